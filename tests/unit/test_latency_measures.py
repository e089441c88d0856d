"""What the latency benchmark reads is right: histogram percentiles against the samples they bin, the
normalize histogram observed once per book event, and wall-clock exchange time in the synthetic market.
No timing is asserted."""

from __future__ import annotations

import itertools
import random
import time

from prometheus_client import REGISTRY

from benchmarks.latency import _minus, exact_percentiles, histogram_percentiles
from cryptoflow import metrics
from cryptoflow.model import Kind, RawEvent
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from operators.book.tracker import BYBIT, BookSettings
from operators.book_logic import BookLogic

BOUNDS = [0.001, 0.002, 0.005, 0.01, float("inf")]


def _cumulative(samples: list[float]) -> list[tuple[float, float]]:
    return [(le, float(sum(1 for s in samples if s <= le))) for le in BOUNDS]


def test_histogram_percentiles_fall_in_the_bucket_of_the_true_percentile():
    rng = random.Random(3)
    samples = [rng.expovariate(1 / 0.002) for _ in range(5000)]
    got = histogram_percentiles(_cumulative(samples))
    ordered = sorted(samples)
    assert got["count"] == 5000
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        truth = ordered[int(q * len(ordered)) - 1]
        lo = max([0.0, *[b for b in BOUNDS if b < truth]])
        hi = min(b for b in BOUNDS if b >= truth)
        assert lo * 1000 <= got[f"{name}_ms"] <= hi * 1000, (name, truth, got)
    biggest = max(samples)
    assert got["max_le_ms"] == min(b for b in BOUNDS if b >= biggest) * 1000
    # 2 ms is a bucket bound: the share within the target is exact
    assert got["within_2ms"] == sum(1 for s in samples if s <= 0.002) / 5000


def test_baseline_is_subtracted_bucket_by_bucket():
    before, after = [0.0001] * 10, [0.0001] * 10 + [0.003] * 4
    diff = _minus(_cumulative(after), _cumulative(before))
    assert diff == _cumulative([0.003] * 4)
    assert histogram_percentiles(diff)["count"] == 4


def test_exact_percentiles_of_known_values():
    values = list(range(1, 1001))  # µs
    got = exact_percentiles(values)
    assert (got["p50_ms"], got["p90_ms"], got["p99_ms"], got["max_ms"]) == (0.501, 0.901, 0.991, 1.0)
    assert exact_percentiles([]) == {"count": 0}


def _count(stream: str, since: str) -> float:
    metrics.NORMALIZE_LATENCY.labels(stream, since)  # exists (at 0) before the first observation
    value = REGISTRY.get_sample_value(
        "cryptoflow_normalize_latency_seconds_count", {"stream": stream, "since": since}
    )
    return value or 0.0


def test_book_logic_observes_every_event_once_per_clock():
    stream = "test_normalize_stream"
    logic = BookLogic(BYBIT, BookSettings(stream=stream))
    now = time.time_ns() // 1000
    events = [RawEvent("bybit", "spot", "X-Y", "XY", Kind.DEPTH_SNAPSHOT, now - 900, now - 500, 0, 0,
                       ([["1.0", "1"]], [["2.0", "1"]]), seq=1)]  # fmt: skip
    events += [
        RawEvent(
            "bybit",
            "spot",
            "X-Y",
            "XY",
            Kind.DEPTH_DIFF,
            None if u % 2 else now,
            now,
            0,
            u,
            ([["1.0", str(u)]], []),
            seq=u,
        )
        for u in range(2, 12)
    ]
    ingest0, exchange0 = _count(stream, "ingest"), _count(stream, "exchange")
    for ev in events:
        logic.on_item(ev)
    assert _count(stream, "ingest") - ingest0 == len(events)
    # events without an exchange timestamp are not observed since="exchange"
    assert _count(stream, "exchange") - exchange0 == sum(1 for e in events if e.exchange_ts_us is not None)


def test_wall_clock_market_stamps_real_increasing_times():
    market = SyntheticMarket(["A-USD", "B-USD"], depth=5, keep_truth=False, wall_clock=True)
    before = time.time_ns() // 1000
    stamps = [market.next_change().ts_us for _ in range(2000)]
    after = time.time_ns() // 1000
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert before <= stamps[0] and stamps[-1] <= after + len(stamps)  # +1 µs per message at most when faster
    simulated = SyntheticMarket(["A-USD"], depth=5, keep_truth=False, step_us=1000)
    first = simulated.next_change().ts_us
    assert simulated.next_change().ts_us - first == 1000  # the default clock is unchanged
