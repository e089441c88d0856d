"""Staged epochs: data files written with pyiceberg's own writer, committed later in one append.

Phase one of the sink's two-phase commit writes an epoch's rows as data files (partitioned, with
Iceberg field ids and column statistics, split by the table's target file size: exactly what
`Transaction.append` writes) without committing them. The `DataFile`s travel in Bytewax's snapshot
state (pickled into the recovery store: ~0.9 KB per file), so a restart can commit them.
Phase two appends those files in one transaction, through the same snapshot producer `append` uses.

The rows of an epoch whose files are not written yet when the epoch is sealed (its tail: at most
about two `sink.stage_rows` chunks) travel in the state instead, as lz4-compressed Arrow IPC streams
(`tail`): the seal then waits for no Parquet write, and a restart writes the tail's files itself.
lz4 over zstd (2,000 `spot_ob` rows, 1.6 MB of Arrow): 3.0 ms and 852 KB against 6.2 ms and 629 KB;
the serialization runs for every converted piece, so its CPU time counts more than the state's bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

TAIL_COMPRESSION = "lz4"
# Arrow's thread pool (de)compresses each column buffer as a task of its own. For a small piece the
# hand-offs cost far more than the work: a 250-row `spot_delta` piece took 284-298 µs of CPU to encode
# with the pool against 71-99 µs without, and the sink child decoded a chunk of such pieces at
# 1.1-1.2 µs per row against 0.36-0.44. A burst's large pieces keep the pool: about the same CPU, but
# 1.5-2x less wall time on 2 cores (docs/benchmarks.md, round 16).
IPC_THREADS_MIN_ROWS = 10_000
IPC_THREADS_MIN_BYTES = 256 * 1024  # a compressed stream of roughly that many rows


@dataclass(frozen=True)
class StagedCommit:
    """One sealed epoch: the writer's seq and full watermark after it, its data files written so far
    and the Arrow IPC streams of its rows not in those files (`rows` counts both)."""

    seq: int
    watermark: dict[int, int] = field(default_factory=dict)
    files: tuple[Any, ...] = ()  # pyiceberg DataFile (picklable: a slotted Record)
    rows: int = 0
    # a plain default (a class attribute): states pickled before this field existed load with ()
    tail: tuple[bytes, ...] = ()

    def tail_bytes(self) -> int:
        return sum(len(blob) for blob in self.tail)


def to_ipc(arrow: pa.Table) -> bytes:
    """One Arrow table as a compressed IPC stream (what the state carries for unwritten rows)."""
    sink = pa.BufferOutputStream()
    threads = arrow.num_rows >= IPC_THREADS_MIN_ROWS
    options = pa.ipc.IpcWriteOptions(compression=TAIL_COMPRESSION, use_threads=threads)
    with pa.ipc.new_stream(sink, arrow.schema, options=options) as writer:
        writer.write_table(arrow)
    return sink.getvalue().to_pybytes()


def from_ipc(blobs: Iterable[bytes]) -> pa.Table | None:
    """The rows of `to_ipc` streams, in order, as one table; None for none."""
    alone, pooled = pa.ipc.IpcReadOptions(use_threads=False), pa.ipc.IpcReadOptions(use_threads=True)
    tables = [
        pa.ipc.open_stream(blob, options=pooled if len(blob) >= IPC_THREADS_MIN_BYTES else alone).read_all()
        for blob in blobs
    ]
    if not tables:
        return None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def write_data_files(table: Any, arrow: Any) -> list[Any]:
    """Write `arrow` as the table's data files; nothing is committed.

    The files pyiceberg's `_dataframe_to_data_files` writes (same partitions, bin packing, file schema
    with field ids, table compression properties, column statistics, `DataFile`s), cheaper in three
    ways: dictionary encoding only for the top-level string columns (venue, market, symbol repeat on
    every row; decimal values, the nested book levels above all, rarely do: the writer's dictionary
    attempt on them took half the encode time and made the files 20 % larger); rows already in the file
    schema's types get their field ids by a cast instead of pyiceberg's per-column projection; and
    sorted rows are split into partitions by their runs (`partitions.partitions_in_runs`), not by a
    filter per partition. Values, types, partitions and meaning are unchanged; only their Parquet
    encoding differs (docs/benchmarks.md)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import FileFormatFactory as Formats
    from pyiceberg.io.pyarrow import (
        _determine_partitions,
        _get_parquet_writer_kwargs,
        _to_requested_schema,
        bin_pack_arrow_table,
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
        pyarrow_to_schema,
        schema_to_pyarrow,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.schema import sanitize_column_names
    from pyiceberg.table import TableProperties
    from pyiceberg.table.locations import load_location_provider
    from pyiceberg.typedef import Record
    from pyiceberg.utils.concurrent import ExecutorFactory
    from pyiceberg.utils.properties import property_as_int

    from connectors.iceberg.partitions import partitions_in_runs

    meta, io, write_uuid = table.metadata, table.io, uuid.uuid4()
    props = meta.properties
    if props.get(TableProperties.WRITE_FILE_FORMAT, "parquet").lower() != "parquet":
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        return list(_dataframe_to_data_files(table_metadata=meta, df=arrow, io=io))
    target_size = property_as_int(
        props,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    row_group = property_as_int(
        props, TableProperties.PARQUET_ROW_GROUP_LIMIT, TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT
    )
    table_schema = meta.schema()
    task_schema = pyarrow_to_schema(
        arrow.schema, name_mapping=table_schema.name_mapping, format_version=meta.format_version
    )
    file_schema = sanitize_column_names(table_schema)
    format_model = Formats.get(FileFormat.PARQUET)
    locations = load_location_provider(table_location=meta.location, table_properties=props)
    writer_kwargs = {
        **_get_parquet_writer_kwargs(props),
        "use_dictionary": [
            f.name for f in arrow.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        ],
    }
    stats_plan = compute_statistics_plan(file_schema, props)
    stats_paths = parquet_path_to_id_mapping(file_schema)
    spec = meta.spec()
    if spec.is_unpartitioned():
        parts = [(None, arrow)]
    else:
        parts = partitions_in_runs(spec, table_schema, arrow) or [
            (p.partition_key, p.arrow_table_partition)
            for p in _determine_partitions(spec, table_schema, arrow)
        ]
    tasks = [(key, batches) for key, rows in parts for batches in bin_pack_arrow_table(rows, target_size)]

    # Rows already in the file schema's types and names (the sink's conversions build exactly that) only
    # need the field ids attached: a cast to the same types, instead of pyiceberg's per-column projection.
    file_arrow = schema_to_pyarrow(file_schema, include_field_ids=True)
    relabel = arrow.schema.equals(schema_to_pyarrow(file_schema, include_field_ids=False))

    def write_one(task_id: int, key: Any, batches: list[Any]) -> Any:
        if relabel:
            rows = pa.Table.from_batches(batches, schema=arrow.schema).cast(file_arrow)
        else:
            projected = [
                _to_requested_schema(
                    requested_schema=file_schema,
                    file_schema=task_schema,
                    batch=batch,
                    include_field_ids=True,
                    format_model=format_model,
                )
                for batch in batches
            ]
            rows = pa.Table.from_batches(projected)
        name = f"00000-{task_id}-{write_uuid}.parquet"  # pyiceberg's WriteTask file name
        path = locations.new_data_location(data_file_name=name, partition_key=key)
        out = io.new_output(path)
        with out.create(overwrite=True) as fos:
            writer = pq.ParquetWriter(fos, schema=rows.schema, store_decimal_as_integer=True, **writer_kwargs)
            writer.write(rows, row_group_size=row_group)
            writer.close()
        stats = data_file_statistics_from_parquet_metadata(
            parquet_metadata=writer.writer.metadata,
            stats_columns=stats_plan,
            parquet_column_mapping=stats_paths,
        )
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=path,
            file_format=FileFormat.PARQUET,
            partition=key.partition if key else Record(),
            file_size_in_bytes=len(out),
            sort_order_id=None,
            spec_id=meta.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **stats.to_serialized_dict(),
        )

    executor = ExecutorFactory.get_or_create()
    return list(executor.map(lambda t: write_one(t[0], *t[1]), enumerate(tasks)))


def append_files(tx: Any, files: Any, snapshot_properties: dict[str, str]) -> None:
    """Add already written data files to `tx` as one append snapshot (fast or merge append, as the
    table's `commit.manifest-merge.enabled` says, like `Transaction.append`)."""
    with tx._append_snapshot_producer(snapshot_properties) as producer:
        for data_file in files:
            producer.append_data_file(data_file)


def commit_append(
    table: Any,
    files: Any,
    snapshot_properties: dict[str, str],
    table_props: dict[str, str],
    bounds: dict[str, str],
) -> None:
    """One atomic commit: the staged files (snapshot summary = writer, seq, watermark), the writer's
    watermark property, and the metadata-log bounds (`bounds`) where the table lacks them."""
    current = table.metadata.properties
    tx = table.transaction()
    tx.set_properties({**{k: v for k, v in bounds.items() if current.get(k) != v}, **table_props})
    append_files(tx, files, snapshot_properties)
    tx.commit_transaction()
