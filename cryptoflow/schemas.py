"""Iceberg table definitions (schema, partition spec, sort order) and row -> Arrow conversion.

Prices and quantities are `decimal(38, 18)`: exact (no binary float ever touches them) and directly
queryable. Operators keep the exchange's decimal text; the cast to decimal happens here, column-wise in
Arrow's C++ kernels, which is far cheaper than building Python `Decimal` objects per level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform
from pyiceberg.types import (
    BooleanType,
    DecimalType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from cryptoflow.model import LevelBatch, TradeRow

DECIMAL = DecimalType(38, 18)
ARROW_DECIMAL = pa.decimal128(38, 18)
ARROW_TS = pa.timestamp("us", tz="UTC")
SCHEMA_VERSION = "1"

_COMMON = [
    ("exchange", StringType(), True),
    ("market", StringType(), True),
    ("symbol", StringType(), True),
    ("exchange_symbol", StringType(), True),
    ("exchange_ts", TimestamptzType(), False),
    ("ingest_ts", TimestamptzType(), True),
]
_LINEAGE = [("shard", IntegerType(), True), ("source_offset", LongType(), True)]


def _schema(columns: list[tuple[str, Any, bool]]) -> Schema:
    return Schema(
        *[
            NestedField(field_id=i, name=name, field_type=kind, required=required)
            for i, (name, kind, required) in enumerate(columns, start=1)
        ]
    )


@dataclass(frozen=True)
class TableDef:
    name: str
    schema: Schema
    partition_spec: PartitionSpec
    sort_order: SortOrder
    sort_keys: list[tuple[str, str]]
    to_arrow: Callable[[Sequence[Any]], pa.Table]

    @property
    def arrow_schema(self) -> pa.Schema:
        return schema_to_pyarrow(self.schema, include_field_ids=False)


def _spec_and_order(
    schema: Schema, bucket_symbol: int | None, sort: list[str]
) -> tuple[PartitionSpec, SortOrder]:
    fields = [
        PartitionField(schema.find_field("exchange_ts").field_id, 1000, DayTransform(), "exchange_ts_day"),
        PartitionField(schema.find_field("exchange").field_id, 1001, IdentityTransform(), "exchange"),
    ]
    if bucket_symbol:
        fields.append(
            PartitionField(
                schema.find_field("symbol").field_id, 1002, BucketTransform(bucket_symbol), "symbol_bucket"
            )
        )
    order = SortOrder(*[SortField(source_id=schema.find_field(c).field_id) for c in sort])
    return PartitionSpec(*fields), order


def _decimal(values: list[str]) -> pa.Array:
    return pa.array(values, type=pa.string()).cast(ARROW_DECIMAL)


def _ts(values: list[int | None]) -> pa.Array:
    return pa.array(values, type=pa.int64()).cast(ARROW_TS)


# ---------------------------------------------------------------------------------------------- deltas
_DELTA_COLUMNS = [
    *_COMMON,
    ("side", StringType(), True),
    ("price", DECIMAL, True),
    ("qty", DECIMAL, True),
    ("seq", LongType(), False),
    ("first_seq", LongType(), False),
    ("prev_seq", LongType(), False),
    ("is_snapshot", BooleanType(), True),
    *_LINEAGE,
]
DELTA_SCHEMA = _schema(_DELTA_COLUMNS)
_DELTA_ARROW = schema_to_pyarrow(DELTA_SCHEMA, include_field_ids=False)


def level_batches_to_arrow(batches: Sequence[LevelBatch]) -> pa.Table:
    """Expand per-message batches into flat level rows, one Arrow column at a time."""
    cols: dict[str, list[Any]] = {name: [] for name, _, _ in _DELTA_COLUMNS}
    sides, prices, qtys = cols["side"], cols["price"], cols["qty"]
    for b in batches:
        n = len(b.prices)
        if n == 0:
            continue
        cols["exchange"] += [b.exchange] * n
        cols["market"] += [b.market] * n
        cols["symbol"] += [b.symbol] * n
        cols["exchange_symbol"] += [b.exchange_symbol] * n
        cols["exchange_ts"] += [b.exchange_ts_us] * n
        cols["ingest_ts"] += [b.ingest_ts_us] * n
        cols["seq"] += [b.seq] * n
        cols["first_seq"] += [b.first_seq] * n
        cols["prev_seq"] += [b.prev_seq] * n
        cols["is_snapshot"] += [b.is_snapshot] * n
        cols["shard"] += [b.shard] * n
        cols["source_offset"] += [b.offset] * n
        sides += b.sides
        prices += b.prices
        qtys += b.qtys
    arrays = []
    for field in _DELTA_ARROW:
        values = cols[field.name]
        if field.name in ("price", "qty"):
            arrays.append(_decimal(values))
        elif field.name in ("exchange_ts", "ingest_ts"):
            arrays.append(_ts(values))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=_DELTA_ARROW)


# ---------------------------------------------------------------------------------------------- ticks
_TICK_COLUMNS = [
    *_COMMON,
    ("trade_id", StringType(), True),
    ("price", DECIMAL, True),
    ("qty", DECIMAL, True),
    ("side", StringType(), True),
    *_LINEAGE,
]
TICK_SCHEMA = _schema(_TICK_COLUMNS)
_TICK_ARROW = schema_to_pyarrow(TICK_SCHEMA, include_field_ids=False)
_TICK_ATTR = {"exchange_ts": "exchange_ts_us", "ingest_ts": "ingest_ts_us", "source_offset": "offset"}


def trades_to_arrow(rows: Sequence[TradeRow]) -> pa.Table:
    arrays = []
    for field in _TICK_ARROW:
        attr = _TICK_ATTR.get(field.name, field.name)
        values = [getattr(r, attr) for r in rows]
        if field.name in ("price", "qty"):
            arrays.append(_decimal(values))
        elif field.name in ("exchange_ts", "ingest_ts"):
            arrays.append(_ts(values))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=_TICK_ARROW)


def _table(name: str, schema: Schema, bucket: int | None, sort: list[str], to_arrow: Callable) -> TableDef:
    spec, order = _spec_and_order(schema, bucket, sort)
    return TableDef(name, schema, spec, order, [(c, "ascending") for c in sort], to_arrow)


TABLES: dict[str, TableDef] = {
    "spot_delta": _table(
        "spot_delta", DELTA_SCHEMA, 16, ["symbol", "exchange_ts", "seq"], level_batches_to_arrow
    ),
    "ticks": _table("ticks", TICK_SCHEMA, None, ["symbol", "exchange_ts", "trade_id"], trades_to_arrow),
}
