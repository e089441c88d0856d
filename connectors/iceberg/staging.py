"""Staged epochs: data files written with pyiceberg's own writer, committed later in one append.

Phase one of the sink's two-phase commit writes an epoch's rows as data files (partitioned, with
Iceberg field ids and column statistics, split by the table's target file size: exactly what
`Transaction.append` writes) without committing them. The `DataFile`s travel in Bytewax's snapshot
state (pickled into the recovery store: ~0.9 KB per file), so a restart can commit them.
Phase two appends those files in one transaction, through the same snapshot producer `append` uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StagedCommit:
    """One sealed epoch: the writer's seq and full watermark after it, and its data files."""

    seq: int
    watermark: dict[int, int] = field(default_factory=dict)
    files: tuple[Any, ...] = ()  # pyiceberg DataFile (picklable: a slotted Record)
    rows: int = 0


def write_data_files(table: Any, arrow: Any) -> list[Any]:
    """Write `arrow` as the table's data files; nothing is committed."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    return list(_dataframe_to_data_files(table_metadata=table.metadata, df=arrow, io=table.io))


def append_files(tx: Any, files: Any, snapshot_properties: dict[str, str]) -> None:
    """Add already written data files to `tx` as one append snapshot (fast or merge append, as the
    table's `commit.manifest-merge.enabled` says, like `Transaction.append`)."""
    with tx._append_snapshot_producer(snapshot_properties) as producer:
        for data_file in files:
            producer.append_data_file(data_file)
