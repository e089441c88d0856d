"""Read side of a shard's journal: records from a given offset on, following new segments as they
appear. Never blocks: a record still being written (or a torn tail) is simply not returned yet."""

from __future__ import annotations

import logging
from pathlib import Path

from connectors.journal.segment import JournalRecord, TornRecord, decode_at, list_segments
from cryptoflow import metrics

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class JournalReader:
    def __init__(self, directory: Path, start_offset: int | None = None, name: str = "") -> None:
        """Position at `start_offset` (None: the oldest retained record)."""
        self.directory = Path(directory)
        self.name = name or self.directory.name
        self._fh = None
        self._segment_first: int | None = None
        self._buf = b""
        self._pos = 0  # position in _buf
        segments = list_segments(self.directory)
        oldest = segments[0][0] if segments else 0
        wanted = oldest if start_offset is None else start_offset
        if wanted < oldest:
            # The records were deleted (retention) or never existed here: say so, do not pretend.
            metrics.JOURNAL_MISSING.labels(self.name).inc(oldest - wanted)
            log.error(
                "journal %s: offset %d requested but the oldest retained record is %d; %d records are gone",
                self.name, wanted, oldest, oldest - wanted,
            )  # fmt: skip
            wanted = oldest
        self.next_offset = wanted
        self._open_for(wanted, segments)

    def _open_for(self, offset: int, segments: list[tuple[int, Path]]) -> None:
        candidates = [(first, path) for first, path in segments if first <= offset]
        if not candidates:
            return
        first, path = candidates[-1]
        self._switch(first, path)
        # skip records below the wanted offset inside the segment
        while True:
            record = self._peek()
            if record is None or record.offset >= offset:
                break
            self._advance()

    def _switch(self, first: int, path: Path) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh = path.open("rb")
        self._segment_first, self._buf, self._pos = first, b"", 0

    def _fill(self) -> bool:
        """Read more bytes of the current segment; False when nothing new was there."""
        if self._fh is None:
            return False
        more = self._fh.read(_CHUNK)
        if not more:
            return False
        self._buf = self._buf[self._pos :] + more
        self._pos = 0
        return True

    def _peek(self) -> JournalRecord | None:
        while True:
            try:
                record, self._peek_end = decode_at(self._buf, self._pos)
                return record
            except TornRecord:
                if not self._fill():
                    return None

    def _advance(self) -> None:
        self._pos = self._peek_end

    def _next_segment(self) -> bool:
        """Move on when a segment starting at `next_offset` exists (the writer rolled over)."""
        for first, path in list_segments(self.directory):
            if first == self.next_offset and first != self._segment_first:
                self._switch(first, path)
                return True
        return False

    def read(self, max_records: int) -> list[JournalRecord]:
        out: list[JournalRecord] = []
        while len(out) < max_records:
            record = self._peek()
            if record is None:
                if self._next_segment():
                    continue
                if self._fh is None and self._open_first_at_or_after():
                    continue
                break
            self._advance()
            if record.offset != self.next_offset:
                metrics.JOURNAL_MISSING.labels(self.name).inc(max(0, record.offset - self.next_offset))
                log.error(
                    "journal %s: expected offset %d, found %d", self.name, self.next_offset, record.offset
                )
            out.append(record)
            self.next_offset = record.offset + 1
        return out

    def _open_first_at_or_after(self) -> bool:
        for first, path in list_segments(self.directory):
            if first >= self.next_offset:
                self._switch(first, path)
                return True
        return False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
