"""Append side of a shard's journal: what arrived, in arrival order, each record with its offset.

Offsets are assigned here, at arrival, so they are a property of the data on disk: a replay after a
crash reads the same records with the same offsets. Opening a journal cuts off a torn tail left by a
crash and continues after the last whole record. `fsync` decides what a power loss can take: `always`
(every record), `interval` (at most `fsync_interval_ms` of data) or `never` (leave it to the OS; a
process crash still loses nothing, since every record is handed to the OS before it is acknowledged).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Literal

from connectors.journal.segment import RecordKind, encode, list_segments, scan_segment, segment_name
from cryptoflow import metrics

log = logging.getLogger(__name__)

FsyncPolicy = Literal["always", "interval", "never"]


class JournalWriter:
    def __init__(
        self,
        directory: Path,
        fsync: FsyncPolicy = "interval",
        fsync_interval_ms: int = 1000,
        segment_bytes: int = 64 * 1024 * 1024,
        name: str = "",
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync, self.fsync_interval_s = fsync, fsync_interval_ms / 1000
        self.segment_bytes, self.name = segment_bytes, name or self.directory.name
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._last_sync = time.monotonic()
        self._dirty = False
        self._records = metrics.JOURNAL_RECORDS.labels(self.name)  # bound once: labels() is not free
        self.next_offset = self._recover()

    def _recover(self) -> int:
        segments = list_segments(self.directory)
        if not segments:
            return 0
        first, path = segments[-1]
        records, good = scan_segment(path)
        if good < path.stat().st_size:
            log.warning("journal %s: cutting a torn tail of %d bytes", path, path.stat().st_size - good)
            metrics.JOURNAL_TORN_TAILS.labels(self.name).inc()
            with path.open("r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())
        if not records:
            return first
        return records[-1].offset + 1

    def _open_segment(self) -> None:
        path = self.directory / segment_name(self.next_offset)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        if self.fsync != "never":  # make the new file's name durable too
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def append(self, kind: RecordKind, meta: str, payload: bytes | str, ingest_us: int) -> int:
        """Write one record; returns its offset. Thread-safe (several clients may share a shard)."""
        data = payload.encode() if isinstance(payload, str) else payload
        with self._lock:
            if self._fd is None or self._size >= self.segment_bytes:
                self._roll()
            offset = self.next_offset
            blob = encode(offset, ingest_us, kind, meta, data)
            os.write(self._fd, blob)  # type: ignore[arg-type]
            self._size += len(blob)
            self.next_offset = offset + 1
            self._dirty = True
            self._maybe_sync()
        self._records.inc()
        return offset

    def _roll(self) -> None:
        if self._fd is not None:
            self._sync()
            os.close(self._fd)
        self._open_segment()

    def _maybe_sync(self) -> None:
        if self.fsync == "always" or (
            self.fsync == "interval" and time.monotonic() - self._last_sync >= self.fsync_interval_s
        ):
            self._sync()

    def _sync(self) -> None:
        if self._fd is not None and self._dirty and self.fsync != "never":
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = time.monotonic()

    def sync(self) -> None:
        with self._lock:
            self._sync()

    def delete_below(self, offset: int, min_age_s: float = 0.0) -> int:
        """Delete segments whose records are all below `offset` (and older than `min_age_s`).

        The segment being written is never deleted. Returns the number of segments removed.
        """
        removed = 0
        with self._lock:
            segments = list_segments(self.directory)
            now = time.time()
            for (_first, path), (next_first, _) in itertools.pairwise(segments):
                if next_first > offset:
                    break
                try:
                    if min_age_s and now - path.stat().st_mtime < min_age_s:
                        break
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed += 1
        if removed:
            metrics.JOURNAL_SEGMENTS_DELETED.labels(self.name).inc(removed)
            log.info("journal %s: deleted %d segment(s) below offset %d", self.name, removed, offset)
        return removed

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                self._sync()
                os.close(self._fd)
                self._fd = None
