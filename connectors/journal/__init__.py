"""Per-shard journal: append-only segment files holding exactly what arrived (raw frames, REST bodies),
in arrival order with a monotonic offset, so a live feed becomes replayable after a crash."""

from connectors.journal.reader import JournalReader
from connectors.journal.segment import JournalRecord, RecordKind
from connectors.journal.writer import JournalWriter

__all__ = ["JournalReader", "JournalRecord", "JournalWriter", "RecordKind"]
