"""A sorted write's partitions as runs of rows, instead of pyiceberg's filter per partition.

pyiceberg's `_determine_partitions` transforms every partition source column in full, groups the
transformed columns to find the distinct keys, then filters the whole table once per key and copies
each result. The sink writes rows sorted by the table's sort order (symbol, then time), so the rows of
one partition already sit in a few contiguous runs: one per venue, symbol and day. Here
the run boundaries come from comparing each row with the one before on the partition's source columns
(time transforms compared after the transform, every other transform before it: equal sources give
equal keys), only each run's first row is transformed, and a partition is the concatenation of its
runs' slices (no copy). Same keys, same rows in the same order as pyiceberg's; for 236k `futures_delta`
rows of 4 symbols (2 partitions), pyiceberg's 88 ms become 11 ms, 7 of them the day transform
(docs/benchmarks.md, round 15).

Rows that are not in runs (unsorted, or several venues' rows alternating within one symbol, which the
sort order does not separate) make too many runs: `partitions_in_runs` then returns None and the caller
uses pyiceberg's way.
"""

from __future__ import annotations

import functools
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import TimeTransform

# More runs than this share of the rows (at least MIN_RUNS, at most MAX_RUNS) means the rows are not in
# runs: a Python step per run would cost more than pyiceberg's filters.
MAX_RUN_SHARE = 1 / 64
MIN_RUNS = 64
MAX_RUNS = 4_096


def partitions_in_runs(
    spec: PartitionSpec, schema: Schema, arrow: pa.Table
) -> list[tuple[PartitionKey, pa.Table]] | None:
    """(partition key, its rows) per distinct key, in the order of each key's first row; None when the
    rows are not in runs or a source column has nulls (pyiceberg's way handles both)."""
    rows = arrow.num_rows
    if rows == 0 or not spec.fields:
        return None
    sources, transforms = [], []
    for field in spec.fields:
        name = schema.find_column_name(field.source_id)
        if name is None or "." in name or name not in arrow.column_names:
            return None  # nested source columns: leave them to pyiceberg
        column = arrow.column(name)
        if column.null_count:
            return None
        transform = field.transform.pyarrow_transform(schema.find_field(field.source_id).field_type)
        if isinstance(field.transform, TimeTransform):
            column, transform = transform(column), None
        sources.append(column)
        transforms.append(transform)
    starts = _run_starts(sources, rows)
    if starts is None:
        return None
    firsts = [column.take(starts) for column in sources]
    keys = [
        column.to_pylist() if transform is None else transform(column).to_pylist()
        for column, transform in zip(firsts, transforms, strict=True)
    ]
    bounds = [*starts.to_pylist(), rows]
    slices: dict[tuple[Any, ...], list[pa.Table]] = {}
    for run, key in enumerate(zip(*keys, strict=True)):
        start = bounds[run]
        slices.setdefault(key, []).append(arrow.slice(start, bounds[run + 1] - start))
    return [
        (
            PartitionKey(
                field_values=[PartitionFieldValue(f, v) for f, v in zip(spec.fields, key, strict=True)],
                partition_spec=spec,
                schema=schema,
            ),
            parts[0] if len(parts) == 1 else pa.concat_tables(parts),
        )
        for key, parts in slices.items()
    ]


def _run_starts(columns: list[Any], rows: int) -> pa.Array | None:
    """Row indices where any column differs from the row before (0 first); None for too many runs."""
    if rows == 1:
        return pa.array([0], pa.int64())
    changed = [pc.not_equal(column.slice(1), column.slice(0, rows - 1)) for column in columns]
    any_changed = functools.reduce(pc.or_, changed)
    if isinstance(any_changed, pa.ChunkedArray):
        any_changed = any_changed.combine_chunks()
    changes = pc.indices_nonzero(any_changed)
    if len(changes) + 1 > min(MAX_RUNS, max(MIN_RUNS, int(rows * MAX_RUN_SHARE))):
        return None
    return pa.concat_arrays([pa.array([0], pa.int64()), pc.add(changes, 1).cast(pa.int64())])
