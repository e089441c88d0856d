"""A Prometheus histogram whose observations take no lock: each thread counts into cells of its own, and a
scrape adds the cells up.

Why: the book logic observes two latencies per book event. prometheus_client's `Histogram` takes a lock
per bucket and per sum on every observation (~2.5 µs per value on this machine, 5 µs per event), more
than a tenth of the worker's own per-event work at 10k events/s (docs/benchmarks.md, round 14). A cell
has one writer, its thread, so its counts need no lock; a scrape reads them while they move, which only
means it sees an observation a moment later.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString


class _Cell:
    """One thread's counts (one per bucket, +Inf last) and sum."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0


class ThreadHistogramChild:
    """One label set. `observe_many` from any thread; a value on a bucket's bound counts in that bucket
    (as prometheus_client's `observe`)."""

    __slots__ = ("_cells", "_guard", "bounds")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self._cells: dict[int, _Cell] = {}
        self._guard = threading.Lock()

    def _new_cell(self, ident: int) -> _Cell:
        with self._guard:
            return self._cells.setdefault(ident, _Cell(len(self.bounds)))

    def observe(self, value: float) -> None:
        self.observe_many((value,))

    def observe_many(self, values: Sequence[float]) -> None:
        if not values:
            return
        ident = threading.get_ident()
        cell = self._cells.get(ident) or self._new_cell(ident)
        counts, bounds = cell.counts, self.bounds
        for value in values:
            counts[bisect_left(bounds, value)] += 1
        cell.total += sum(values)

    def read(self) -> tuple[list[int], float]:
        """Per-bucket counts (not cumulative) and the sum, over every thread's cell."""
        with self._guard:
            cells = list(self._cells.values())
        counts = [0] * len(self.bounds)
        total = 0.0
        for cell in cells:
            for i, count in enumerate(cell.counts):
                counts[i] += count
            total += cell.total
        return counts, total


class ThreadHistogram:
    """The collector: exposed exactly as a prometheus_client `Histogram` with these labels and buckets
    (`_bucket`, `_count`, `_sum`; no `_created`)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str],
        buckets: Iterable[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(bounds)
        self._children: dict[tuple[str, ...], ThreadHistogramChild] = {}
        self._guard = threading.Lock()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> ThreadHistogramChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            with self._guard:
                child = self._children.setdefault(key, ThreadHistogramChild(self.bounds))
        return child

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._guard:
            children = list(self._children.items())
        for key, child in children:
            counts, total = child.read()
            buckets = [(floatToGoString(b), c) for b, c in zip(self.bounds, accumulate(counts), strict=True)]
            family.add_metric(list(key), buckets, total)
        return [family]
