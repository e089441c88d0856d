"""A write's rows in the table's sort order, without sorting rows that already are.

The sink writes every chunk sorted by its table's sort order (symbol, time, seq), so that each data
file is sorted and a write's partitions are runs of rows (`partitions.partitions_in_runs`). Rows often
arrive in that order already: a shard of one symbol (the busiest symbols get shards of their own)
hands them over in exchange order. Arrow's sort is stable, so for such rows it returns them unchanged,
after computing sort indices and a `take` of every column: 60-100 ms of CPU for 250k `spot_delta`
rows in the child's 1,000 chunks here, where comparing each row with the one before costs ~10 ms
(`python -m benchmarks.sort_rows`; docs/benchmarks.md, round 18).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

_BEFORE = {"ascending": pc.less, "descending": pc.greater}


def in_sort_order(arrow: pa.Table, sort_keys: Sequence[tuple[str, str]]) -> bool:
    """True when every row sorts at or after the row before it by `sort_keys` (Arrow's `sort_by` keys:
    (column, "ascending" | "descending")). A null in a key column answers False: where Arrow places
    nulls is the sort's business, so such rows are sorted by it. An unknown column or order raises
    KeyError, however few the rows."""
    keys = [(arrow.column(name), _BEFORE[order]) for name, order in sort_keys]  # KeyError: no such key
    rows = arrow.num_rows
    if rows < 2 or not keys:
        return True
    ahead: pa.ChunkedArray | None = None  # row i-1 sorts strictly before row i on the keys so far
    tied: pa.ChunkedArray | None = None  # row i-1 equals row i on the keys so far
    for column, precedes in keys:
        if column.null_count:
            return False
        before, after = column.slice(0, rows - 1), column.slice(1)
        less, same = precedes(before, after), pc.equal(before, after)
        if ahead is None or tied is None:
            ahead, tied = less, same
        else:
            ahead, tied = pc.or_(ahead, pc.and_(tied, less)), pc.and_(tied, same)
    assert ahead is not None and tied is not None
    return pc.all(pc.or_(ahead, tied)).as_py() is True


def sort_rows(arrow: pa.Table, sort_keys: Sequence[tuple[str, str]]) -> pa.Table:
    """`arrow.sort_by(sort_keys)`, cheaper: the same rows in the same order, each column in one chunk.

    Rows already in that order are only combined. Parquet's writer pays per chunk: sorted rows read from
    250-row pieces took 480 ms of CPU to write as they were, 153 ms combined first; from 2,500- and
    5,000-row pieces combining still saved 10-24 ms, at 10,000 it was even. Other rows are taken in the
    order of sort indices computed on the key columns alone, in one chunk: Arrow sorts a table of many
    chunks chunk by chunk and then merges, and the same stable sort on the combined key columns cost
    ~25-40 % less (250k `spot_delta` rows, `python -m benchmarks.sort_rows`)."""
    keys = pa.table({name: arrow.column(name).combine_chunks() for name, _ in sort_keys})
    if in_sort_order(keys, sort_keys):
        return arrow.combine_chunks()  # one chunk already: the same buffers, no copy
    return arrow.take(pc.sort_indices(keys, sort_keys=list(sort_keys)))
