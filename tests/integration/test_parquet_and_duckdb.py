"""What the sink writes: zstd by default (configurable), row-group statistics, the target file size
honoured, rows sorted by the table's sort order in every file; and DuckDB (pinned, with its iceberg
extension from PyPI, loaded offline) reads the table back exactly."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.sink import IcebergSinkPartition
from cryptoflow.config import ParquetConfig
from cryptoflow.schemas import TABLES
from operators.positioned import Positioned
from tests.support.duckdb_offline import connect
from tests.support.sinks import catalog_cfg, commit_epoch, expected_aggregates, rows

pytestmark = pytest.mark.integration
TICKS = TABLES["ticks"]


def write(tmp_path, parquet: ParquetConfig, data: list[Positioned]):
    catalog = load_catalog(catalog_cfg(tmp_path))
    table = ensure_table(catalog, "cryptoflow", TICKS, parquet)
    part = IcebergSinkPartition(TICKS, table, "test/ticks", None)
    part.write_batch(data)
    commit_epoch(part)
    return catalog.load_table(("cryptoflow", "ticks"))


def data_files(table) -> list[str]:
    return [f.file.file_path.removeprefix("file://") for f in table.scan().plan_files()]


def test_parquet_files_are_zstd_with_statistics_sorted_and_split_by_target_size(tmp_path):
    data = rows(60_000)
    table = write(tmp_path, ParquetConfig(target_mb=1), data)
    files = data_files(table)
    arrow_mb = TICKS.to_arrow([p.row for p in data]).nbytes / 2**20
    assert len(files) >= int(arrow_mb)  # ~1 MB of Arrow data per file: several files
    total = 0
    for path in files:
        meta = pq.ParquetFile(path).metadata
        total += meta.num_rows
        for rg in range(meta.num_row_groups):
            for col in range(meta.num_columns):
                column = meta.row_group(rg).column(col)
                assert column.compression == "ZSTD"
                assert column.statistics is not None and column.statistics.has_min_max
        content = pq.read_table(path).select(["symbol", "exchange_ts", "trade_id"]).to_pylist()
        keys = [(r["symbol"], r["exchange_ts"], r["trade_id"]) for r in content]
        assert keys == sorted(keys)
    assert total == len(data)


def test_compression_is_configurable(tmp_path):
    table = write(tmp_path, ParquetConfig(compression="snappy"), rows(500))
    for path in data_files(table):
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "SNAPPY"


def test_duckdb_reads_the_table_exactly(tmp_path):
    data = rows(3_000)
    table = write(tmp_path, ParquetConfig(), data)
    con = connect("avro", "iceberg")
    metadata = table.metadata_location.removeprefix("file://")
    got = con.execute(
        f"SELECT symbol, count(*), sum(qty), min(price), max(price) FROM iceberg_scan('{metadata}') "
        "GROUP BY symbol ORDER BY symbol"
    ).fetchall()
    assert [tuple(row) for row in got] == expected_aggregates(data)
