"""cryptoflow/thread_histogram.py: the lock-free histogram exposes exactly what prometheus_client's own
`Histogram` exposes for the same observations, across threads, through a registry and a name filter."""

from __future__ import annotations

import math
import random
import threading

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from cryptoflow.thread_histogram import ThreadHistogram

BOUNDS = (0.001, 0.01, 0.1, 1.0)


def _samples(registry: CollectorRegistry) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples if not s.name.endswith("_created")}  # fmt: skip


def _values(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [
        rng.choice([*BOUNDS, 0.0, 5.0, -1.0]) if rng.random() < 0.3 else rng.uniform(0, 2) for _ in range(n)
    ]


def test_the_same_samples_as_prometheus_clients_histogram():
    values = _values(3, 500)
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    h_theirs = Histogram("lat", "x", ["k", "j"], buckets=BOUNDS, registry=theirs)
    h_ours = ThreadHistogram("lat", "x", ["k", "j"], buckets=BOUNDS, registry=ours)
    for v in values:
        h_theirs.labels("a", "1").observe(v)
    h_theirs.labels("b", "2").observe(0.5)
    h_ours.labels("a", "1").observe_many(values[:200])
    h_ours.labels("a", "1").observe_many([])
    for value in values[200:210]:
        h_ours.labels("a", "1").observe(value)
    h_ours.labels("a", "1").observe_many(values[210:])
    h_ours.labels("b", "2").observe(0.5)
    expected, got = _samples(theirs), _samples(ours)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(got[key], value, abs_tol=1e-9), key
    assert expected[("lat_count", (("j", "1"), ("k", "a")))] == 500


def test_every_threads_observations_are_counted():
    registry = CollectorRegistry()
    child = ThreadHistogram("lat", "x", ["k"], buckets=BOUNDS, registry=registry).labels("a")
    per_thread = [_values(seed, 2_000) for seed in range(8)]
    start = threading.Barrier(len(per_thread))

    def observe(values: list[float]) -> None:
        start.wait()
        for i in range(0, len(values), 7):
            child.observe_many(values[i : i + 7])

    threads = [threading.Thread(target=observe, args=(values,)) for values in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [v for values in per_thread for v in values]
    assert registry.get_sample_value("lat_count", {"k": "a"}) == len(every)
    assert math.isclose(registry.get_sample_value("lat_sum", {"k": "a"}), sum(every))
    at_most_10ms = sum(1 for v in every if v <= 0.01)
    assert registry.get_sample_value("lat_bucket", {"k": "a", "le": "0.01"}) == at_most_10ms


def test_a_name_filtered_scrape_returns_only_its_buckets():
    registry = CollectorRegistry()
    ThreadHistogram("lat_seconds", "x", ["k"], buckets=BOUNDS, registry=registry).labels("a").observe(0.003)
    text = generate_latest(registry.restricted_registry(["lat_seconds_bucket"])).decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [
        'lat_seconds_bucket{k="a",le="0.001"} 0.0',
        'lat_seconds_bucket{k="a",le="0.01"} 1.0',
        'lat_seconds_bucket{k="a",le="0.1"} 1.0',
        'lat_seconds_bucket{k="a",le="1.0"} 1.0',
        'lat_seconds_bucket{k="a",le="+Inf"} 1.0',
    ]
