"""On-disk overflow of a bounded channel (`spill` policy): items appended to journal segments in
arrival order and read back in the same order once the in-memory part is drained.

Without the journal a partition's queue is in-memory only, so a spill is private to this process: it
starts empty (leftovers of a dead process are removed, as their in-memory peers were lost too) and its
segments are deleted as soon as they are read back, which keeps the disk use bounded by the backlog.
"""

from __future__ import annotations

import pickle
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Any

from connectors.journal import JournalReader, JournalWriter, RecordKind
from cryptoflow.model import RawEvent

SPILL_META = "spill"
CONTROL_META = "control"
SEGMENT_BYTES = 8 * 1024 * 1024
READ_AHEAD = 256


class SpillJournal:
    """Not thread-safe on its own: the channel calls it under its lock."""

    def __init__(self, directory: Path, name: str = "") -> None:
        self.directory = Path(directory)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.name = name or self.directory.name
        label = f"spill/{self.name}"
        self._writer = JournalWriter(self.directory, "never", segment_bytes=SEGMENT_BYTES, name=label)
        self._reader = JournalReader(self.directory, 0, name=label)
        self._ahead: deque[Any] = deque()
        self._controls: dict[int, Any] = {}  # spill position -> sentinel object (END)
        self.written = 0
        self.loaded = 0  # records read back from disk
        self.read = 0  # items handed out

    def append(self, item: Any) -> None:
        if isinstance(item, RawEvent):
            meta, payload = SPILL_META, pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
        else:  # a sentinel: its identity matters, so it stays in memory and the record marks its place
            self._controls[self.written] = item
            meta, payload = CONTROL_META, b""
        self._writer.append(RecordKind.WS_FRAME, meta, payload, time.time_ns() // 1000)
        self.written += 1

    def take(self) -> Any | None:
        """The oldest item not yet read back, or None when the spill is empty (drained)."""
        if not self._ahead:
            records = self._reader.read(READ_AHEAD)
            if not records:
                return None
            for position, record in enumerate(records, self.loaded):
                if record.meta == CONTROL_META:
                    self._ahead.append(self._controls.pop(position))
                else:
                    self._ahead.append(pickle.loads(record.payload))
            self.loaded += len(records)
            self._writer.delete_below(self._reader.next_offset)
        self.read += 1
        return self._ahead.popleft()

    def pending(self) -> int:
        return self.written - self.read

    def close(self) -> None:
        self._writer.close()
        self._reader.close()
        shutil.rmtree(self.directory, ignore_errors=True)
