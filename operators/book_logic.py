"""Bytewax stateful logic around `operators.book.tracker.BookTracker`: one tracker per `exchange|symbol`,
emitting `BookRow`s (snapshots / checkpoints) and `GapRow`s. Pure: no I/O; counts go to prometheus."""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Sequence
from typing import Any

from bytewax.operators import StatefulLogic

from cryptoflow import metrics
from cryptoflow.model import BookRow, GapRow, RawEvent
from operators.book.tracker import BookSettings, BookTracker
from operators.schemes import scheme_of

log = logging.getLogger(__name__)


class BookLogic(StatefulLogic[RawEvent, BookRow | GapRow, BookTracker]):
    """`scheme=None`: learn it from the first event (`operators.schemes.scheme_of`), for flows that
    read several venues (Bytewax builds the logic before it sees the key)."""

    def __init__(
        self, scheme: str | None, settings: BookSettings, resume: bytes | BookTracker | None = None
    ) -> None:
        self.settings = settings
        # `resume` is what `snapshot` returned (bytes), or a tracker from recovery data written before that
        self.tracker: BookTracker | None = pickle.loads(resume) if isinstance(resume, bytes) else resume
        if self.tracker is None and scheme is not None:
            self.tracker = BookTracker(scheme, settings)
        self._since_ingest = metrics.NORMALIZE_LATENCY.labels(settings.stream, "ingest")
        self._since_exchange = metrics.NORMALIZE_LATENCY.labels(settings.stream, "exchange")

    def on_item(self, value: RawEvent) -> tuple[list[BookRow | GapRow], bool]:
        out = self._step(value)
        now_us = time.time_ns() // 1000  # "normalized": the event is in the book and its rows are built
        self._since_ingest.observe((now_us - value.ingest_ts_us) / 1e6)
        if value.exchange_ts_us is not None:
            self._since_exchange.observe((now_us - value.exchange_ts_us) / 1e6)
        return out, StatefulLogic.RETAIN

    def on_run(self, events: Sequence[RawEvent]) -> tuple[list[BookRow | GapRow], list[int], bool]:
        """`on_item` for a run of one book's events (`operators.positioned`): the same rows, each with
        its event's offset, and the same latencies, observed once per run (`observe_many`)."""
        out: list[BookRow | GapRow] = []
        offsets: list[int] = []
        since_ingest: list[float] = []
        since_exchange: list[float] = []
        time_ns = time.time_ns
        for value in events:
            rows = self._step(value)
            now_us = time_ns() // 1000
            since_ingest.append((now_us - value.ingest_ts_us) / 1e6)
            if value.exchange_ts_us is not None:
                since_exchange.append((now_us - value.exchange_ts_us) / 1e6)
            if rows:
                out += rows
                offsets += [value.offset] * len(rows)
        self._since_ingest.observe_many(since_ingest)
        self._since_exchange.observe_many(since_exchange)
        return out, offsets, StatefulLogic.RETAIN

    def _step(self, value: RawEvent) -> list[BookRow | GapRow]:
        """One event through the tracker: its gap rows, then its book rows; gaps and mismatches counted."""
        if self.tracker is None:
            self.tracker = BookTracker(scheme_of(value.exchange, value.market), self.settings)
        before = self.tracker.counters
        checks = (before.book_ticker.mismatch, before.checksum.mismatch, before.crossed)
        step = self.tracker.on_event(value)
        for gap in step.gaps:
            metrics.seq_event(value.exchange, f"gap_{gap.reason}").inc()
            log.warning("%s: book invalid (%s) at seq %s; waiting for a resync snapshot", value.key,
                        gap.reason, gap.seq_to)  # fmt: skip
        after = self.tracker.counters
        if (after.book_ticker.mismatch, after.checksum.mismatch, after.crossed) != checks:
            metrics.seq_event(value.exchange, "check_mismatch").inc()
        if not step.gaps:
            return step.rows
        return [*step.gaps, *step.rows]

    def snapshot(self) -> bytes:
        """Bytewax calls this at every epoch end for every key touched, recovery on or off: the tracker as
        pickle bytes (immutable, so no copy; each book side is one flat byte string of its levels, see
        operators/book/_levels.c) instead of a deep copy of every level object."""
        return pickle.dumps(self.tracker, protocol=pickle.HIGHEST_PROTOCOL)


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
