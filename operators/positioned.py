"""Tag every output row with the stream position of the input that produced it.

The exactly-once sink drops rows whose position its table already holds. The position must be the
*triggering* input's `(shard, offset)`, not the row's own lineage offset: a buffered diff is emitted
when a later snapshot arrives, so its own offset can be below rows of other books that were already
committed. Triggering offsets only grow from epoch to epoch, and a deterministic replay re-emits the
same rows at the same triggering offsets. Pure logic: wraps any `StatefulLogic` unchanged.

Input is an `EventRun` (operators/runs.py: one key's events of one source batch) or a single event.
An inner logic with `on_run(events) -> (rows, offsets, discard)` gets the run in one call; any other
is fed event by event.
Output is one `PositionedBatch` per run (two when `split` rows such as gaps go to another table): the
rows of every event in order, with each row's triggering offset in a parallel list, so the sink sees one
item per run instead of one object per row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bytewax.operators import StatefulLogic

from operators.runs import EventRun


@dataclass(slots=True)
class Positioned:
    """One row and its triggering position (still accepted by the sink, e.g. from tests and tools)."""

    shard: int
    offset: int
    row: Any


@dataclass(slots=True)
class PositionedBatch:
    """Rows of one shard with their triggering offsets (`offsets[i]` for `rows[i]`, non-decreasing).
    `split` marks the batch of rows the flow routes to a second table (e.g. `GapRow`s to `gaps`)."""

    shard: int
    offsets: list[int]
    rows: list[Any]
    split: bool = False

    def __len__(self) -> int:
        return len(self.rows)


class PositionedLogic(StatefulLogic[Any, PositionedBatch, Any]):
    """Delegates to `inner`; its snapshot is the inner logic's snapshot, so recovery state is unchanged.

    `split`: rows of this type are returned in their own batch (`split=True`). `rebuild` makes a fresh
    inner logic when the inner one asks to be discarded in the middle of a run (Bytewax would build a new
    one for the next item)."""

    def __init__(
        self,
        inner: StatefulLogic,
        split: type | None = None,
        rebuild: Callable[[], StatefulLogic] | None = None,
    ) -> None:
        self.inner, self.split, self.rebuild = inner, split, rebuild
        self.last: tuple[int, int] = (-1, -1)

    def _batches(self, shard: int, offsets: list[int], rows: list[Any]) -> list[PositionedBatch]:
        if not rows:
            return []
        split = self.split
        if split is None or not any(isinstance(r, split) for r in rows):
            return [PositionedBatch(shard, offsets, rows)]
        keep = PositionedBatch(shard, [], [])
        other = PositionedBatch(shard, [], [], split=True)
        for offset, row in zip(offsets, rows, strict=True):
            out = other if isinstance(row, split) else keep
            out.offsets.append(offset)
            out.rows.append(row)
        return [b for b in (keep, other) if b.rows]

    def _wrap(self, rows: list[Any]) -> list[PositionedBatch]:
        shard, offset = self.last
        return self._batches(shard, [offset] * len(rows), rows)

    def on_item(self, value: Any) -> tuple[list[PositionedBatch], bool]:
        events = value.events if isinstance(value, EventRun) else (value,)
        on_run = getattr(self.inner, "on_run", None)
        if on_run is not None:  # the inner logic takes the whole run (one call, counters once per run)
            rows, offsets, discard = on_run(events)
            tail = events[-1]
            self.last = (tail.shard, tail.offset)
            return self._batches(tail.shard, offsets, rows), discard
        offsets: list[int] = []
        out: list[Any] = []
        discard = StatefulLogic.RETAIN
        last = len(events) - 1
        for i, event in enumerate(events):
            rows, discard = self.inner.on_item(event)
            if rows:
                out += rows
                offsets += [event.offset] * len(rows)
            if discard and i < last:
                if self.rebuild is None:
                    raise RuntimeError("inner logic discarded its state mid-run and cannot be rebuilt")
                self.inner = self.rebuild()
        tail = events[-1]
        self.last = (tail.shard, tail.offset)
        return self._batches(tail.shard, offsets, out), discard

    def on_notify(self) -> tuple[list[PositionedBatch], bool]:
        rows, discard = self.inner.on_notify()
        return self._wrap(rows), discard

    def on_eof(self) -> tuple[list[PositionedBatch], bool]:
        rows, discard = self.inner.on_eof()
        return self._wrap(rows), discard

    def notify_at(self) -> Any:
        return self.inner.notify_at()

    def snapshot(self) -> Any:
        return self.inner.snapshot()
