"""`BookLogic.on_run` (a run of one book's events at once, latencies observed in bulk) against the
per-event `on_item` path, and `metrics.observe_many` against prometheus_client's own `observe`."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from connectors.kraken.parsing import KrakenV2Parser
from cryptoflow import metrics
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from cryptoflow.simulator.synthetic.paced import pregenerate
from operators.book.tracker import BookSettings
from operators.book_logic import BookLogic
from operators.positioned import PositionedLogic
from operators.runs import EventRun

BOUNDS = (0.001, 0.01, 0.1, 1.0)


def _samples(registry: CollectorRegistry) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples if not s.name.endswith("_created")}  # fmt: skip


def test_observe_many_counts_like_observe_one_by_one():
    rng = random.Random(3)
    values = [
        rng.choice([*BOUNDS, 0.0, 5.0, -1.0]) if rng.random() < 0.3 else rng.uniform(0, 2) for _ in range(500)
    ]
    one, many = CollectorRegistry(), CollectorRegistry()
    h_one = Histogram("lat", "x", ["k"], buckets=BOUNDS, registry=one).labels("a")
    h_many = Histogram("lat", "x", ["k"], buckets=BOUNDS, registry=many).labels("a")
    for v in values:
        h_one.observe(v)
    metrics.observe_many(h_many, values[:200])
    metrics.observe_many(h_many, [])
    for value in values[200:210]:  # the one-value path
        metrics.observe_many(h_many, [value])
    metrics.observe_many(h_many, values[210:])
    expected, got = _samples(one), _samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) < 1e-9, key
    assert expected[("lat_count", (("k", "a"),))] == 500


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
    child = metrics.NORMALIZE_LATENCY.labels(stream, "ingest")
    return sum(bucket.get() for bucket in child._buckets)


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
