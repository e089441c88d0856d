"""Tag every output row with the stream position of the input that produced it.

The exactly-once sink drops rows whose position its table already holds. The position must be the
*triggering* input's `(shard, offset)`, not the row's own lineage offset: a buffered diff is emitted
when a later snapshot arrives, so its own offset can be below rows of other books that were already
committed. Triggering offsets only grow from epoch to epoch, and a deterministic replay re-emits the
same rows at the same triggering offsets. Pure logic: wraps any `StatefulLogic` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bytewax.operators import StatefulLogic


@dataclass(slots=True)
class Positioned:
    shard: int
    offset: int
    row: Any


class PositionedLogic(StatefulLogic[Any, Positioned, Any]):
    """Delegates to `inner`; its snapshot is the inner logic's snapshot, so recovery state is unchanged."""

    def __init__(self, inner: StatefulLogic) -> None:
        self.inner = inner
        self.last: tuple[int, int] = (-1, -1)

    def _wrap(self, rows: Any) -> list[Positioned]:
        shard, offset = self.last
        return [Positioned(shard, offset, row) for row in rows]

    def on_item(self, value: Any) -> tuple[list[Positioned], bool]:
        self.last = (value.shard, value.offset)
        rows, discard = self.inner.on_item(value)
        return self._wrap(rows), discard

    def on_notify(self) -> tuple[list[Positioned], bool]:
        rows, discard = self.inner.on_notify()
        return self._wrap(rows), discard

    def on_eof(self) -> tuple[list[Positioned], bool]:
        rows, discard = self.inner.on_eof()
        return self._wrap(rows), discard

    def notify_at(self) -> Any:
        return self.inner.notify_at()

    def snapshot(self) -> Any:
        return self.inner.snapshot()
