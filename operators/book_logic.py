"""Bytewax stateful logic around `operators.book.tracker.BookTracker`: one tracker per `exchange|symbol`,
emitting `BookRow`s (snapshots / checkpoints) and `GapRow`s. Pure: no I/O; counts go to prometheus."""

from __future__ import annotations

import copy
import logging
from typing import Any

from bytewax.operators import StatefulLogic

from cryptoflow import metrics
from cryptoflow.model import BookRow, GapRow, RawEvent
from operators.book.tracker import BookSettings, BookTracker

log = logging.getLogger(__name__)


class BookLogic(StatefulLogic[RawEvent, BookRow | GapRow, BookTracker]):
    def __init__(self, scheme: str, settings: BookSettings, resume: BookTracker | None = None) -> None:
        self.tracker = resume if resume is not None else BookTracker(scheme, settings)

    def on_item(self, value: RawEvent) -> tuple[list[BookRow | GapRow], bool]:
        before = self.tracker.counters
        checks = (before.book_ticker.mismatch, before.checksum.mismatch, before.crossed)
        step = self.tracker.on_event(value)
        for gap in step.gaps:
            metrics.SEQ_EVENTS.labels(value.exchange, f"gap_{gap.reason}").inc()
            log.warning("%s: book invalid (%s) at seq %s; waiting for a resync snapshot", value.key,
                        gap.reason, gap.seq_to)  # fmt: skip
        after = self.tracker.counters
        if (after.book_ticker.mismatch, after.checksum.mismatch, after.crossed) != checks:
            metrics.SEQ_EVENTS.labels(value.exchange, "check_mismatch").inc()
        out: list[BookRow | GapRow] = [*step.gaps, *step.rows]
        return out, StatefulLogic.RETAIN

    def snapshot(self) -> BookTracker:
        return copy.deepcopy(self.tracker)


def book_settings(book_cfg: Any, stream: str) -> BookSettings:
    """`cryptoflow.config.BookConfig` -> tracker settings."""
    return BookSettings(
        depth_cap=book_cfg.depth_cap,
        snapshot_interval_ms=book_cfg.snapshot_interval_ms,
        checkpoint_interval_ms=book_cfg.checkpoint_interval_ms,
        snapshot_depth=book_cfg.snapshot_depth,
        max_buffered=book_cfg.max_buffered_diffs,
        stream=stream,
    )
