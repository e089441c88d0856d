"""`write_data_files` writes what pyiceberg's own writer (`_dataframe_to_data_files`, what
`Transaction.append` uses) writes: same partitions, file schema with field ids, rows, column statistics
and metrics; only the dictionary encoding differs (top-level string columns only)."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.io.pyarrow import _dataframe_to_data_files, schema_to_pyarrow

from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.staging import append_files, write_data_files
from cryptoflow.config import ParquetConfig
from cryptoflow.model import TradeRow
from cryptoflow.schemas import TABLES
from tests.support.sinks import catalog_cfg

METRICS = ("record_count", "partition", "value_counts", "null_value_counts", "nan_value_counts")
BOUNDS = ("lower_bounds", "upper_bounds", "column_sizes")


@pytest.fixture
def tables(tmp_path):
    catalog = load_catalog(catalog_cfg(tmp_path))
    for name in ("spot_ob", "ticks"):
        ensure_table(catalog, "cryptoflow", TABLES[name], ParquetConfig())
    return lambda name: catalog.load_table(("cryptoflow", name))


def book_table(n: int) -> pa.Table:
    from benchmarks.sink_stages import book_rows

    rows = book_rows(n, symbols=40)
    rows[3].best_bid = rows[3].mid = None  # nulls in the statistics too
    rows[5].asks = []
    spot = TABLES["spot_ob"]
    return spot.to_arrow(rows).sort_by(spot.sort_keys)


def trade_table(n: int) -> pa.Table:
    rng = random.Random(3)
    rows = []
    for i in range(n):
        ts, price, qty = 1_790_000_000_000_000 + i * 1000, f"{rng.random() * 100:.4f}", f"{rng.random():.6f}"
        side = "buy" if i % 2 else "sell"
        rows.append(
            TradeRow(
                "binance",
                "spot",
                f"S{i % 7}-USDT",
                f"S{i % 7}USDT",
                ts,
                ts + 500,
                str(i),
                price,
                qty,
                side,
                0,
                i,
            )
        )
    trades = TABLES["ticks"]
    return trades.to_arrow(rows).sort_by(trades.sort_keys)


def local(path: str) -> str:
    return path.removeprefix("file://")


def narrow_types(arrow: pa.Table) -> pa.Table:
    """The same rows in other Arrow types of the same Iceberg types (string, list): pyiceberg's
    projection path, not the relabelling cast."""

    def narrow(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t):
            return pa.string()
        if pa.types.is_large_list(t):
            return pa.list_(t.value_field.with_type(narrow(t.value_type)))
        return t

    return arrow.cast(pa.schema([f.with_type(narrow(f.type)) for f in arrow.schema]))


@pytest.mark.parametrize(
    ("name", "build"),
    [("spot_ob", book_table), ("ticks", trade_table), ("spot_ob", lambda n: narrow_types(book_table(n)))],
)
def test_data_files_equal_pyicebergs_except_the_dictionary_choice(tables, name, build):
    table = tables(name)
    arrow = build(3000)
    relabelled = arrow.schema.equals(schema_to_pyarrow(table.schema(), include_field_ids=False))
    assert relabelled == pa.types.is_large_string(arrow.schema.field("symbol").type)  # both paths run
    ours = sorted(write_data_files(table, arrow), key=lambda f: str(f.partition))
    theirs = sorted(_dataframe_to_data_files(table.metadata, arrow, table.io), key=lambda f: str(f.partition))
    assert len(ours) == len(theirs) > (1 if name == "spot_ob" else 0)  # spot_ob: symbol buckets
    for a, b in zip(ours, theirs, strict=True):
        for attr in METRICS:
            assert getattr(a, attr) == getattr(b, attr), attr
        assert a.lower_bounds == b.lower_bounds and a.upper_bounds == b.upper_bounds
        assert a.split_offsets and a.file_size_in_bytes > 0
        assert a.file_path.rsplit("/", 1)[0] == b.file_path.rsplit("/", 1)[0]  # same partition directory
        mine, ref = pq.ParquetFile(local(a.file_path)), pq.ParquetFile(local(b.file_path))
        assert mine.schema_arrow.equals(ref.schema_arrow, check_metadata=True)  # field ids included
        assert mine.read().equals(ref.read())
        meta = mine.metadata.row_group(0)
        for k in range(meta.num_columns):
            column = meta.column(k)
            top = column.path_in_schema.split(".")[0]
            dictionary = column.dictionary_page_offset is not None
            string = pa.types.is_large_string(arrow.schema.field(top).type) or pa.types.is_string(
                arrow.schema.field(top).type
            )
            assert dictionary == string, column.path_in_schema
    assert sum(f.record_count for f in ours) == arrow.num_rows


def test_written_files_commit_and_read_back(tables):
    table = tables("spot_ob")
    arrow = book_table(2000)
    tx = table.transaction()
    append_files(tx, write_data_files(table, arrow), {})
    tx.commit_transaction()
    back = table.refresh().scan().to_arrow().sort_by([("source_offset", "ascending")])
    assert back.num_rows == arrow.num_rows
    assert back.cast(arrow.schema).equals(arrow.sort_by([("source_offset", "ascending")]))


def test_ipc_streams_round_trip_on_both_sides_of_the_thread_pool_threshold(monkeypatch):
    """Small pieces are (de)compressed on the calling thread, large ones on Arrow's pool: the same rows
    come back either way, in order, and a mix of both reads as one table."""
    from connectors.iceberg import staging

    book = book_table(120)
    small, large = book.slice(0, 7), book.slice(7)
    monkeypatch.setattr(staging, "IPC_THREADS_MIN_ROWS", 50)
    written, read = [], []
    real_write_options, real_open = pa.ipc.IpcWriteOptions, pa.ipc.open_stream

    class WriteOptions(real_write_options):  # pyarrow checks the options' type
        def __init__(self, **kwargs):
            written.append(kwargs["use_threads"])
            super().__init__(**kwargs)

    monkeypatch.setattr(pa.ipc, "IpcWriteOptions", WriteOptions)
    blobs = [staging.to_ipc(small), staging.to_ipc(large)]
    assert written == [False, True]
    monkeypatch.setattr(staging, "IPC_THREADS_MIN_BYTES", (len(blobs[0]) + len(blobs[1])) // 2)
    assert len(blobs[0]) < staging.IPC_THREADS_MIN_BYTES <= len(blobs[1])  # one of each kind
    monkeypatch.setattr(
        pa.ipc,
        "open_stream",
        lambda b, options: read.append(options.use_threads) or real_open(b, options=options),
    )
    assert staging.from_ipc(blobs).equals(book)
    assert read == [False, True]
    assert staging.from_ipc([]) is None
