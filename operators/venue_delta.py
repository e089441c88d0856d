"""Delta tables (`spot_delta`, `futures_delta`) for every venue: level rows of each message that
continues a verified book, plus a `gaps` row for every break. Pure logic, one instance per key.

Bytewax builds stateful logic before it sees the key, so the venue is learnt from the first event:
Binance books (REST snapshot + diffs) go through `DeltaSyncLogic`, which emits the snapshot together
with the buffered diffs that continue it; venues whose snapshots arrive on the WebSocket (Bybit, OKX,
Coinbase, Kraken) go through the book engine (`BookTracker`), so checksums and connection gaps decide
validity exactly as they do for the `*_ob` tables, and a message's levels are emitted only once the
engine has applied it to a valid book.
"""

from __future__ import annotations

from typing import Any

from bytewax.operators import StatefulLogic

from cryptoflow.model import DiffLevels, GapRow, Kind, LevelBatch, RawEvent
from operators.book.tracker import BookSettings, BookTracker
from operators.delta_sync import DeltaSyncLogic
from operators.flatten import levels_of
from operators.schemes import diff_verdict, scheme_of


class TrackerDelta:
    """Delta rows through the book engine, for venues that send their snapshots on the WebSocket."""

    def __init__(self, scheme: str, settings: BookSettings) -> None:
        self.tracker = BookTracker(scheme, settings)

    def on_item(self, ev: RawEvent) -> list[LevelBatch | GapRow]:
        c = self.tracker.counters
        before = (c.applied, c.snapshots)
        step = self.tracker.on_event(ev)
        out: list[LevelBatch | GapRow] = list(step.gaps)
        applied = (c.applied, c.snapshots) != before
        if applied and not step.gaps and self.tracker.valid:
            out.append(levels_of(ev, is_snapshot=ev.kind is Kind.DEPTH_SNAPSHOT))
        return out


class VenueDeltaLogic(StatefulLogic[RawEvent, LevelBatch | GapRow, Any]):
    def __init__(self, stream: str, depth_cap: int, max_buffered: int, resume: Any = None) -> None:
        self.stream, self.depth_cap, self.max_buffered = stream, depth_cap, max_buffered
        self.scheme: str | None = None
        self.inner: DeltaSyncLogic | TrackerDelta | None = None
        if resume is not None:
            self.scheme, self.inner = resume

    def _build(self, ev: RawEvent) -> DeltaSyncLogic | TrackerDelta:
        self.scheme = scheme_of(ev.exchange, ev.market)
        verdict = diff_verdict(self.scheme)
        if verdict is not None:
            return DeltaSyncLogic(verdict, self.max_buffered, None, self.stream)
        settings = BookSettings(
            depth_cap=self.depth_cap, max_buffered=self.max_buffered, stream=self.stream, emit=False
        )
        return TrackerDelta(self.scheme, settings)

    def on_item(self, value: RawEvent) -> tuple[list[LevelBatch | GapRow], bool]:
        if self.inner is None:
            self.inner = self._build(value)
        if isinstance(self.inner, DeltaSyncLogic):
            return self.inner.on_item(value)
        return self.inner.on_item(value), StatefulLogic.RETAIN

    def on_run(
        self, events: list[RawEvent]
    ) -> tuple[list[LevelBatch | DiffLevels | GapRow], list[int], bool]:
        """A run of this key's events at once (`PositionedLogic`): rows plus each row's triggering offset."""
        if self.inner is None:
            self.inner = self._build(events[0])
        if isinstance(self.inner, DeltaSyncLogic):
            return self.inner.on_run(events)
        rows: list[LevelBatch | DiffLevels | GapRow] = []
        offsets: list[int] = []
        for ev in events:
            out = self.inner.on_item(ev)
            if out:
                rows += out
                offsets += [ev.offset] * len(out)
        return rows, offsets, StatefulLogic.RETAIN

    def snapshot(self) -> Any:
        import copy

        return copy.deepcopy((self.scheme, self.inner))
