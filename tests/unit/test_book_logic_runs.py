"""`BookLogic.on_run` (a run of one book's events at once, latencies observed in bulk) against the
per-event `on_item` path."""

from __future__ import annotations

from connectors.kraken.parsing import KrakenV2Parser
from cryptoflow import metrics
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from cryptoflow.simulator.synthetic.paced import pregenerate
from operators.book.tracker import BookSettings
from operators.book_logic import BookLogic
from operators.positioned import PositionedLogic
from operators.runs import EventRun


def _events():
    market = SyntheticMarket(["A-USD", "B-USD"], depth=10, seed=9, keep_truth=False)
    book = pregenerate(market, 600)
    parser = KrakenV2Parser(10)
    stamp = b"2026-11-26T16:00:00.123456Z"
    frames = [*book.snapshots.values(), *book.heads]
    events = [parser.parse((head + stamp + b'"}]}').decode(), 1_000)[0] for head in frames]
    del events[100]  # a lost update: a checksum gap row later
    for offset, event in enumerate(events):
        event.offset = offset
        event.exchange_ts_us += offset * 50_000  # rows every 100 ms of event time
    return events


def _count(stream: str) -> float:
    counts, _ = metrics.NORMALIZE_LATENCY.labels(stream, "ingest").read()
    return sum(counts)


def test_a_run_gives_the_rows_offsets_and_latencies_of_one_event_at_a_time():
    events = _events()
    per_event, per_run = [], []
    for mode, out in (("item", per_event), ("run", per_run)):
        logics = {}
        before = _count("runs")
        for symbol in ("A/USD", "B/USD"):
            mine = [e for e in events if e.exchange_symbol == symbol]
            logic = logics[symbol] = BookLogic(None, BookSettings(stream="runs"))
            if mode == "item":
                for event in mine:
                    rows, _ = logic.on_item(event)
                    out.extend((event.offset, row) for row in rows)
            else:
                for start in range(0, len(mine), 37):  # runs of 37 events
                    rows, offsets, _ = logic.on_run(mine[start : start + 37])
                    out.extend(zip(offsets, rows, strict=True))
        assert _count("runs") - before == len(events)
    assert per_run == per_event
    assert any(type(row).__name__ == "GapRow" for _, row in per_run)
    assert len(per_run) > 20


def test_positioned_logic_takes_the_run_path():
    events = [e for e in _events() if e.exchange_symbol == "A/USD"][:50]
    logic = PositionedLogic(BookLogic(None, BookSettings(stream="runs-positioned")))
    batches, _ = logic.on_item(EventRun(events[0].key, events))
    rows = [row for batch in batches for row in batch.rows]
    offsets = [offset for batch in batches for offset in batch.offsets]
    reference = BookLogic(None, BookSettings(stream="runs-positioned"))
    expected = [(e.offset, row) for e in events for row in reference.on_item(e)[0]]
    assert list(zip(offsets, rows, strict=True)) == expected and rows
