"""Per-book operator for the delta tables: sequence diffs against REST snapshots and flatten them.

Hot path: a diff that continues a live book is emitted as `DiffLevels` (the event itself, flattened
column-wise only when the sink builds Arrow), without a `Step` or a per-frame copy of its levels.

Only diffs that continue a verified book are emitted, preceded by the snapshot they continue (rows with
`is_snapshot = true`). A snapshot from REST has no exchange time on Binance spot; it is stamped with the
event time of the diff that straddles it, the first moment the book it describes is known to be live.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bytewax.operators import StatefulLogic

from cryptoflow import metrics
from cryptoflow.level_block import DepthGroup
from cryptoflow.model import DiffLevels, GapRow, Kind, LevelBatch, RawEvent
from operators.flatten import levels_of
from operators.sequencing.sync import DiffSync, Outcome, Step
from operators.sequencing.verdict import VerdictFn

log = logging.getLogger(__name__)


@dataclass
class SyncCounters:
    applied: int = 0
    stale: int = 0
    gaps: int = 0
    snapshots: int = 0
    too_old: int = 0
    overflowed: int = 0
    last_seq: int | None = None  # id and event time of the last applied diff: where a gap starts
    last_ts: int | None = None


def rows_for_step(step: Step[RawEvent, RawEvent]) -> list[LevelBatch | DiffLevels]:
    rows: list[LevelBatch | DiffLevels] = []
    if step.snapshot is not None:
        first_ts = step.diffs[0].exchange_ts_us if step.diffs else None
        ts = step.snapshot.exchange_ts_us if step.snapshot.exchange_ts_us is not None else first_ts
        rows.append(levels_of(step.snapshot, is_snapshot=True, exchange_ts_us=ts))
    rows.extend(DiffLevels(diff) for diff in step.diffs)
    return rows


def gap_row(event: RawEvent, stream: str, reason: str, last_seq: int | None, last_ts: int | None) -> GapRow:
    """The `gaps` row for a break noticed at `event` (book consistent up to `last_seq`/`last_ts`)."""
    seq_to = event.seq if event.kind is Kind.DEPTH_DIFF else None
    return GapRow(
        event.exchange, event.market, event.symbol, event.exchange_symbol, stream, last_seq, seq_to,
        last_ts, event.exchange_ts_us, reason, event.ingest_ts_us, event.shard, event.offset,
    )  # fmt: skip


class DeltaSyncLogic(StatefulLogic[RawEvent, LevelBatch | DiffLevels | GapRow, Any]):
    """Bytewax stateful logic for one `exchange|symbol` key: level rows, plus a `GapRow` per break."""

    def __init__(self, verdict: VerdictFn, max_buffered: int, resume: Any = None, stream: str = "") -> None:
        self.stream = stream
        if resume is not None:
            self.sync, self.counters = resume
        else:
            self.sync, self.counters = DiffSync(verdict, max_buffered), SyncCounters()

    def on_item(self, value: RawEvent) -> tuple[list[LevelBatch | DiffLevels | GapRow], bool]:
        if value.__class__ is DepthGroup:  # a read's column group: `on_run` knows it
            return self.on_run([value])[0], StatefulLogic.RETAIN
        c = self.counters
        if value.kind is Kind.DEPTH_DIFF and self.sync.apply_live(value.first_seq, value.seq, value.prev_seq):
            c.applied += 1
            c.last_seq, c.last_ts = value.seq, value.exchange_ts_us or c.last_ts
            metrics.seq_event(value.exchange, "applied").inc()
            return [DiffLevels(value)], StatefulLogic.RETAIN
        if value.kind is Kind.DEPTH_DIFF:
            step = self.sync.on_diff(value, value.first_seq, value.seq, value.prev_seq)
        elif value.kind is Kind.DEPTH_SNAPSHOT:
            c.snapshots += 1
            step = self.sync.on_snapshot(value, value.seq)
        else:
            return [], StatefulLogic.RETAIN
        self._count(value, step)
        out: list[LevelBatch | DiffLevels | GapRow] = []
        if step.outcome is Outcome.GAP:
            out.append(gap_row(value, self.stream, "sequence", c.last_seq, c.last_ts))
        elif step.outcome is Outcome.SNAPSHOT_TOO_OLD:
            out.append(gap_row(value, self.stream, "snapshot_too_old", c.last_seq, c.last_ts))
        if step.diffs:
            last = step.diffs[-1]
            c.last_seq, c.last_ts = last.seq, last.exchange_ts_us or c.last_ts
        out.extend(rows_for_step(step))
        return out, StatefulLogic.RETAIN

    def on_run(
        self, events: list[RawEvent]
    ) -> tuple[list[LevelBatch | DiffLevels | GapRow], list[int], bool]:
        """`on_item` over a run of this key's events (offset order): the rows and, per row, the offset
        of the event that produced it. Diffs that continue the live book are checked one run at a time
        (`DiffSync.apply_live_run`) and counted once per run; anything else goes through `on_item`. A
        `DepthGroup` (a read's diffs as columns) that continues the live book as a whole is emitted as
        itself, one row item whose offset is its last diff's (its rows commit together); any other is
        expanded into its events and taken like them."""
        rows: list[LevelBatch | DiffLevels | GapRow] = []
        offsets: list[int] = []
        live_run = self.sync.apply_live_run
        apply_group = self.sync.apply_group
        i, end = 0, len(events)
        while i < end:
            ev = events[i]
            if ev.__class__ is DepthGroup:  # a socket read's diffs of this key, as columns
                if apply_group(ev):  # they all continue the live book: one row item, one offset
                    rows.append(ev)
                    offsets.append(ev.offset)
                    self._count_live(ev.n, ev.seq, ev.exchange_ts_us, ev.exchange)
                else:  # anything unusual: the reference path, diff by diff
                    more, more_offsets, _ = self.on_run(ev.events())
                    rows += more
                    offsets += more_offsets
                i += 1
                continue
            j = live_run(events, i)
            if j > i:
                live = events[i:j]
                rows += [DiffLevels(ev) for ev in live]
                offsets += [ev.offset for ev in live]
                last_ts = next((ev.exchange_ts_us for ev in reversed(live) if ev.exchange_ts_us), None)
                self._count_live(j - i, live[-1].seq, last_ts, live[0].exchange)
                i = j
                continue
            ev = events[i]
            out, _ = self.on_item(ev)
            if out:
                rows += out
                offsets += [ev.offset] * len(out)
            i += 1
        return rows, offsets, StatefulLogic.RETAIN

    def _count_live(self, applied: int, last_seq: int | None, last_ts: int | None, exchange: str) -> None:
        c = self.counters
        c.applied += applied
        c.last_seq, c.last_ts = last_seq, last_ts or c.last_ts
        metrics.seq_event(exchange, "applied").inc(applied)

    def _count(self, event: RawEvent, step: Step) -> None:
        c = self.counters
        c.applied += len(step.diffs)
        c.stale += step.stale
        c.overflowed += step.overflowed
        if step.stale:
            metrics.seq_event(event.exchange, "stale").inc(step.stale)
        if step.diffs:
            metrics.seq_event(event.exchange, "applied").inc(len(step.diffs))
        if step.outcome is Outcome.GAP:
            c.gaps += 1
            metrics.seq_event(event.exchange, "gap").inc()
            log.warning(
                "%s: sequence gap at seq %s..%s; book invalid until next snapshot",
                event.key,
                event.first_seq,
                event.seq,
            )
        elif step.outcome is Outcome.SNAPSHOT_TOO_OLD:
            c.too_old += 1
            metrics.seq_event(event.exchange, "snapshot_too_old").inc()

    def snapshot(self) -> Any:
        import copy

        return copy.deepcopy((self.sync, self.counters))
