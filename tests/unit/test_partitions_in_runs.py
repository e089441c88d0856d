"""`partitions_in_runs` must give exactly pyiceberg's partitions (keys, rows, row order) or decline."""

from __future__ import annotations

import random
from decimal import Decimal

import pyarrow as pa
import pytest
from pyiceberg.io.pyarrow import _determine_partitions

from connectors.iceberg import partitions
from connectors.iceberg.partitions import partitions_in_runs
from connectors.iceberg.staging import write_data_files
from cryptoflow.schemas import TABLES

DAY_US = 86_400_000_000
START_US = 1_790_000_000_000_000
SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "AKRO-USDT", "CTK-USDT", "SUSHI-USDT"]


def delta_rows(n: int, seed: int, exchanges=("binance",), days: int = 3, order: str = "sorted") -> pa.Table:
    """`futures_delta`-shaped rows; `order`: sorted by the table's sort keys, or shuffled. With several
    `exchanges` each row's venue is random (the venues interleave within a symbol) unless `exchanges` is
    "by-symbol": then each symbol has one venue, so a sorted table stays in runs."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ts = START_US + rng.randrange(days * DAY_US)
        symbol = rng.choice(SYMBOLS)
        venue = (
            ("binance", "okx")[SYMBOLS.index(symbol) % 2]
            if exchanges == "by-symbol"
            else rng.choice(exchanges)
        )
        rows.append({
            "exchange": venue, "market": "perp", "symbol": symbol,
            "exchange_symbol": "X", "exchange_ts": ts, "ingest_ts": ts + 5, "side": rng.choice("ba"),
            "price": Decimal(f"{rng.random() * 100:.6f}"), "qty": Decimal(f"{rng.random():.8f}"),
            "seq": i, "first_seq": i, "prev_seq": i - 1, "is_snapshot": False, "shard": 0, "source_offset": i,
        })  # fmt: skip
    if order == "sorted":
        rows.sort(key=lambda r: (r["symbol"], r["exchange_ts"], r["seq"]))
    else:
        rng.shuffle(rows)
    return pa.Table.from_pylist(rows, schema=TABLES["futures_delta"].arrow_schema)


def as_map(parts) -> dict[tuple, list[dict]]:
    return {tuple(key.partition): rows.to_pylist() for key, rows in parts}


def pyiceberg_parts(table_name: str, arrow: pa.Table) -> dict[tuple, list[dict]]:
    td = TABLES[table_name]
    return as_map(
        (p.partition_key, p.arrow_table_partition)
        for p in _determine_partitions(td.partition_spec, td.schema, arrow)
    )


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("table_name", ["futures_delta", "ticks"])
def test_sorted_rows_give_pyicebergs_partitions(seed: int, table_name: str) -> None:
    arrow = delta_rows(3_000, seed, ("binance",) if seed % 2 else "by-symbol")
    if table_name == "ticks":
        arrow = arrow.select(["exchange", "symbol", "exchange_ts", "seq"])
    td = TABLES[table_name]
    ours = partitions_in_runs(td.partition_spec, td.schema, arrow)
    assert ours is not None
    assert as_map(ours) == pyiceberg_parts(table_name, arrow)
    assert sum(rows.num_rows for _, rows in ours) == arrow.num_rows


def test_chunked_columns_give_the_same_partitions() -> None:
    """The child's rows come from several IPC streams: columns of several chunks, cut anywhere."""
    td = TABLES["futures_delta"]
    arrow = delta_rows(3_000, 11, "by-symbol")
    chunked = pa.concat_tables([arrow.slice(0, 999), arrow.slice(999, 1_001), arrow.slice(2_000)])
    assert chunked.column("symbol").num_chunks == 3
    ours = partitions_in_runs(td.partition_spec, td.schema, chunked)
    assert ours is not None and as_map(ours) == pyiceberg_parts("futures_delta", arrow)


def test_runs_of_one_bucket_are_joined_in_row_order() -> None:
    """Two symbols in the same bucket and day: one partition, their runs in the order of the rows."""
    td = TABLES["futures_delta"]
    arrow = delta_rows(2_000, 3, days=1)
    buckets = {}
    for key, rows in partitions_in_runs(td.partition_spec, td.schema, arrow):
        buckets.setdefault(tuple(key.partition), set()).update(rows.column("symbol").to_pylist())
    assert any(len(symbols) > 1 for symbols in buckets.values()), "the corpus must hit a shared bucket"
    assert as_map(partitions_in_runs(td.partition_spec, td.schema, arrow)) == pyiceberg_parts(
        "futures_delta", arrow
    )


def test_venues_interleaved_within_a_symbol_decline() -> None:
    """Sorted by symbol and time, two venues alternate: too many runs, so pyiceberg's way is used."""
    td = TABLES["futures_delta"]
    assert partitions_in_runs(td.partition_spec, td.schema, delta_rows(20_000, 4, ("binance", "okx"))) is None


def test_few_unsorted_runs_still_match_and_many_decline() -> None:
    td = TABLES["futures_delta"]
    few = delta_rows(40, 5, order="shuffled")  # at most 40 runs: under MIN_RUNS, so the runs are used
    ours = partitions_in_runs(td.partition_spec, td.schema, few)
    assert ours is not None and as_map(ours) == pyiceberg_parts("futures_delta", few)
    many = delta_rows(20_000, 5, order="shuffled")
    assert partitions_in_runs(td.partition_spec, td.schema, many) is None


def test_nulls_in_a_source_column_decline() -> None:
    td = TABLES["futures_delta"]
    arrow = delta_rows(100, 1)
    ts = arrow.column("exchange_ts").to_pylist()
    ts[10] = None
    arrow = arrow.set_column(arrow.schema.get_field_index("exchange_ts"), "exchange_ts",
                             pa.array(ts, arrow.schema.field("exchange_ts").type))  # fmt: skip
    assert partitions_in_runs(td.partition_spec, td.schema, arrow) is None


def test_one_row_and_no_rows() -> None:
    td = TABLES["futures_delta"]
    one = delta_rows(1, 2)
    assert as_map(partitions_in_runs(td.partition_spec, td.schema, one)) == pyiceberg_parts(
        "futures_delta", one
    )
    assert partitions_in_runs(td.partition_spec, td.schema, one.slice(0, 0)) is None


def test_written_files_match_pyicebergs_partitioning(tmp_path, monkeypatch) -> None:
    """The data files of a write: the same partitions and record counts with the runs as without."""
    from connectors.iceberg.catalog import ensure_table, load_catalog
    from cryptoflow.config import CatalogConfig, ParquetConfig

    cfg = CatalogConfig(type="sql", uri=f"sqlite:///{tmp_path}/c.db", warehouse=str(tmp_path))
    table = ensure_table(load_catalog(cfg), cfg.namespace, TABLES["futures_delta"], ParquetConfig())
    arrow = delta_rows(5_000, 9, "by-symbol")

    def summary(files) -> list[tuple]:
        return sorted((tuple(f.partition), f.record_count) for f in files)

    real, used = partitions.partitions_in_runs, []
    monkeypatch.setattr(partitions, "partitions_in_runs", lambda *args: used.append(real(*args)) or used[-1])
    ours = write_data_files(table, arrow)
    assert len(used) == 1 and used[0] is not None  # the write took the runs
    monkeypatch.setattr(partitions, "partitions_in_runs", lambda *args: None)
    theirs = write_data_files(table, arrow)
    assert summary(ours) == summary(theirs)
    assert sum(f.record_count for f in ours) == arrow.num_rows
