"""The batched hot path (issue 7): per-key runs, one PositionedBatch per run, the sink's batch dedupe,
applied diffs as `DiffLevels` converted in Arrow, and the lock-free hand-off queue. Every check compares
with the per-event path or with values computed here from the inputs."""

from __future__ import annotations

import queue
import random
import threading
from collections import Counter
from decimal import Decimal

import pytest

from connectors.handoff import HandoffQueue
from connectors.iceberg.sink import SinkState
from cryptoflow.model import DiffLevels, GapRow, Kind, LevelBatch, RawEvent
from cryptoflow.schemas import TABLES, _level_batches_table
from operators.delta_sync import DeltaSyncLogic
from operators.flatten import levels_of
from operators.positioned import Positioned, PositionedBatch, PositionedLogic
from operators.runs import EventRun, group_runs, keyed_runs
from operators.sequencing.binance import spot_verdict
from operators.venue_delta import VenueDeltaLogic
from tests.support.sinks import commit_epoch, ids, part, trade

SYMBOLS = ("NKN-USDT", "LRC-BTC", "BLZ-ETH")


def _levels(rng: random.Random) -> list[list[str]]:
    return [
        [f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}", str(rng.randint(0, 5))]
        for _ in range(rng.randint(0, 4))
    ]


def _stream(seed: int, n: int = 600) -> list[RawEvent]:
    """Snapshots and diffs for three books, with duplicates, stale diffs and gaps mixed in."""
    rng = random.Random(seed)
    next_id = {s: 100 for s in SYMBOLS}
    out: list[RawEvent] = []
    for i in range(n):
        symbol = rng.choice(SYMBOLS)
        r = rng.random()
        if r < 0.04 or i < 3:
            out.append(RawEvent("binance", "spot", symbol, symbol.replace("-", ""), Kind.DEPTH_SNAPSHOT, None,
                                i, 0, i, (_levels(rng), _levels(rng)), seq=next_id[symbol] - rng.randint(0, 3)))  # fmt: skip
            continue
        first = next_id[symbol] + 1 + (rng.randint(1, 3) if r < 0.07 else 0)  # some gaps
        if r > 0.97:
            first -= 5  # stale
        last = first + rng.randint(0, 3)
        next_id[symbol] = max(next_id[symbol], last)
        out.append(RawEvent("binance", "spot", symbol, symbol.replace("-", ""), Kind.DEPTH_DIFF, 1000 * i, i, 0,
                            i, (_levels(rng), _levels(rng)), first_seq=first, seq=last))  # fmt: skip
    return out


def _positioned_per_event(events: list[RawEvent]) -> list[tuple[str, int, object]]:
    """Truth: the per-event path (one `DeltaSyncLogic.on_item` per event, row tagged with its event)."""
    logics: dict[str, DeltaSyncLogic] = {}
    out = []
    for ev in events:
        logic = logics.setdefault(ev.key, DeltaSyncLogic(spot_verdict, 50, stream="spot_delta"))
        rows, _ = logic.on_item(ev)
        out += [(ev.key, ev.offset, row) for row in rows]
    return out


def test_group_runs_keeps_each_keys_events_in_order():
    events = _stream(1, 300)
    runs = group_runs(events)
    assert [r.key for r in runs] == list(dict.fromkeys(e.key for e in events))
    for run in runs:
        assert run.events == [e for e in events if e.key == run.key]


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_runs_through_positioned_logic_equal_the_per_event_path(seed):
    events = _stream(seed)
    truth = _positioned_per_event(events)
    assert any(isinstance(r, GapRow) for *_, r in truth) and any(isinstance(r, DiffLevels) for *_, r in truth)
    logics: dict[str, PositionedLogic] = {}
    got = []
    for start in range(0, len(events), 37):  # source batches of 37 events
        for run in group_runs(events[start : start + 37]):
            logic = logics.setdefault(
                run.key, PositionedLogic(VenueDeltaLogic("spot_delta", 100, 50), split=GapRow)
            )
            batches, discard = logic.on_item(run)
            assert discard is False
            for b in batches:
                assert b.offsets == sorted(b.offsets) and len(b.offsets) == len(b.rows)
                assert b.split == all(isinstance(r, GapRow) for r in b.rows)
                got += [(run.key, o, r) for o, r in zip(b.offsets, b.rows, strict=True)]
    assert sorted(got, key=lambda x: (x[0], x[1])) == sorted(truth, key=lambda x: (x[0], x[1]))
    # the counters (recovery state) end where the per-event logic's do
    for key, logic in logics.items():
        ref = DeltaSyncLogic(spot_verdict, 50, stream="spot_delta")
        for ev in events:
            if ev.key == key:
                ref.on_item(ev)
        assert logic.inner.inner.counters == ref.counters


def test_diff_levels_convert_like_flattened_batches():
    rng = random.Random(5)
    items: list[LevelBatch | DiffLevels] = []
    for i, ev in enumerate(_stream(6, 400)):
        ev.exchange_ts_us = ev.exchange_ts_us or 7
        items.append(levels_of(ev, is_snapshot=True) if i % 9 == 0 else DiffLevels(ev))
    rng.shuffle(items)
    flat = [levels_of(x.event, is_snapshot=False) if isinstance(x, DiffLevels) else x for x in items]
    got = TABLES["spot_delta"].to_arrow(items)
    assert got.equals(_level_batches_table(flat)[0])
    # and against values computed here, row by row
    expected = [
        (b.symbol, side, Decimal(p), Decimal(q), b.seq, b.is_snapshot, b.offset)
        for b in flat
        for side, p, q in zip(b.sides, b.prices, b.qtys, strict=True)
    ]
    rows = got.to_pylist()
    assert [
        (r["symbol"], r["side"], r["price"], r["qty"], r["seq"], r["is_snapshot"], r["source_offset"])
        for r in rows
    ] == expected


def test_diff_levels_reads_like_a_level_batch():
    ev = RawEvent("binance", "spot", "A-B", "AB", Kind.DEPTH_DIFF, 5, 6, 1, 9, ([["1", "2"]], [["3", "4"], ["5", "0"]]),
                  first_seq=7, seq=8)  # fmt: skip
    d, b = DiffLevels(ev), levels_of(ev, is_snapshot=False)
    assert (d.sides, d.prices, d.qtys, d.seq, d.offset, len(d), d.is_snapshot) == (
        b.sides,
        b.prices,
        b.qtys,
        b.seq,
        b.offset,
        len(b),
        b.is_snapshot,
    )


def test_sink_drops_the_committed_prefix_of_a_batch(catalog):
    p = part(catalog)
    rows = [trade(0, o) for o in range(10)]
    batch = PositionedBatch(0, [r.offset for r in rows[:6]], [r.row for r in rows[:6]])
    p.write_batch([batch, trade(1, 3)])
    assert commit_epoch(p) == SinkState(1, {0: 5, 1: 3})
    # a replay overlapping the commit: offsets 4..9, of which 4 and 5 are committed
    p.write_batch([PositionedBatch(0, [r.offset for r in rows[4:]], [r.row for r in rows[4:]])])
    assert commit_epoch(p) == SinkState(2, {0: 9, 1: 3})
    assert ids(catalog) == Counter({str(o): 1 for o in range(10)} | {"100003": 1})


def test_sink_batch_with_repeated_offsets_drops_all_rows_of_a_committed_offset(catalog):
    p = part(catalog)
    first = [trade(0, 1, 1), trade(0, 1, 2), trade(0, 2, 3)]
    p.write_batch([PositionedBatch(0, [1, 1, 2], [r.row for r in first])])
    commit_epoch(p)
    again = [trade(0, 2, 3), trade(0, 3, 4), trade(0, 3, 5)]
    p.write_batch([PositionedBatch(0, [2, 3, 3], [r.row for r in again])])
    commit_epoch(p)
    assert ids(catalog) == Counter({str(i): 1 for i in range(1, 6)})


def test_positioned_logic_without_on_run_feeds_event_by_event_and_tags_each_row():
    class Echo:
        def __init__(self):
            self.seen = []

        def on_item(self, ev):
            self.seen.append(ev.offset)
            return [ev.offset * 10] * (ev.offset % 3), False

        def snapshot(self):
            return list(self.seen)

    events = [RawEvent("x", "spot", "A-B", "AB", Kind.TRADE, 1, 1, 4, o, None) for o in range(1, 8)]
    logic = PositionedLogic(Echo())
    (batch,), _ = logic.on_item(EventRun("x|A-B", events))
    expected = [(o, o * 10) for o in range(1, 8) for _ in range(o % 3)]
    assert list(zip(batch.offsets, batch.rows, strict=True)) == expected and batch.shard == 4
    assert logic.snapshot() == list(range(1, 8)) and logic.last == (4, 7)
    single, _ = logic.on_item(events[1])  # a bare event is a run of one
    assert single[0].offsets == [2, 2] and isinstance(single[0], PositionedBatch)
    assert not isinstance(single[0], Positioned)


def test_handoff_queue_is_fifo_bounded_and_wakes_a_waiting_producer():
    q = HandoffQueue(3)
    for i in range(3):
        q.put(i, timeout=0.01)
    assert q.full() and q.qsize() == 3
    with pytest.raises(queue.Full):
        q.put(99, timeout=0.01)
    with pytest.raises(queue.Full):
        q.put_nowait(99)
    total = 5000
    got: list[int] = []
    done = threading.Event()

    def produce():
        for i in range(3, total):
            q.put(i, timeout=5)
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    while len(got) < total:
        got += q.drain(7)
        if len(got) < total and q.empty():
            threading.Event().wait(0.0005)
    t.join(5)
    assert done.is_set() and got == list(range(total))
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.put("a")
    assert q.get_nowait() == "a"


def test_sink_converting_in_pieces_commits_the_same_rows(catalog, monkeypatch):
    from connectors.iceberg import sink as sink_module

    monkeypatch.setattr(sink_module, "CONVERT_EVERY", 4)
    p = part(catalog)
    for start in range(0, 30, 3):
        p.write_batch([trade(0, o) for o in range(start, start + 3)])
    assert len(p.converted) >= 5 and len(p.buffer) < 4  # converted as it went
    assert commit_epoch(p) == SinkState(1, {0: 29})
    assert ids(catalog) == Counter({str(o): 1 for o in range(30)})


def test_keyed_runs_pair_each_run_with_its_key():
    events = _stream(5, 300)
    pairs = keyed_runs(events)
    assert len({key for key, _ in pairs}) == len(pairs) > 1
    for key, run in pairs:
        assert run.key == key and run.events == [e for e in events if e.key == key]
