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
import pyarrow.compute as pc
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform
from pyiceberg.types import (
    BooleanType,
    DecimalType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
)

from cryptoflow.level_block import (
    BlockLevels,
    DepthGroup,
    book_levels,
    decimal_column,
    decimals,
    gather,
    gather_groups,
)
from cryptoflow.model import (
    ASK,
    BID,
    BookRow,
    DiffLevels,
    FundingRow,
    GapRow,
    LevelBatch,
    LiquidationRow,
    RawEvent,
    TradeRow,
)

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


_LEVEL_LISTS = pa.list_(pa.list_(pa.string()))  # one message side: [[price, qty, ...], ...]


def level_batches_to_arrow(batches: Sequence[LevelBatch | DiffLevels]) -> pa.Table:
    """Flat level rows in input order (each message: bids, then asks, each in message order).

    `DiffLevels` (applied diffs, the bulk) are converted without a Python loop over levels: their level
    lists go to Arrow as nested lists, prices and quantities are the first two elements of each level,
    and the per-message columns are repeated per level with `take`. `LevelBatch`es (snapshots, venues
    that flatten themselves) expand in Python. The two parts are merged back into input order by a
    stable sort on (message position, side)."""
    diff_pos: list[int] = []
    diffs: list[RawEvent] = []
    block_pos: list[int] = []
    blocked: list[RawEvent] = []
    batch_pos: list[int] = []
    plain: list[LevelBatch] = []
    group_pos: list[int] = []
    groups: list[DepthGroup] = []
    for i, b in enumerate(batches):
        if type(b) is DepthGroup:
            group_pos.append(i)
            groups.append(b)
        elif type(b) is DiffLevels:
            if type(b.event.payload) is BlockLevels:
                block_pos.append(i)
                blocked.append(b.event)
            else:
                diff_pos.append(i)
                diffs.append(b.event)
        else:
            batch_pos.append(i)
            plain.append(b)
    parts: list[tuple[pa.Table, pa.Array]] = []
    if groups:
        parts.append(_group_levels_table(groups, group_pos))
        if not blocked and not diffs and not plain:
            return parts[0][0]  # rows are in message order already
    if blocked:
        parts.append(_block_levels_table(blocked, block_pos))
        if not groups and not diffs and not plain:
            return parts[0][0]  # rows are in message order already (bids, then asks, per message)
    if diffs:
        parts.append(_diff_levels_table(diffs, diff_pos))
    if not parts:
        return _level_batches_table(plain)[0]
    if plain:
        parts.append(_level_batches_table(plain, batch_pos))
    if len(parts) == 1:
        table, key = parts[0]
    else:
        table = pa.concat_tables([t for t, _ in parts])
        key = pa.concat_arrays([k for _, k in parts])
    return table.take(pc.sort_indices(key))


def _level_batches_table(
    batches: Sequence[LevelBatch], positions: list[int] | None = None
) -> tuple[pa.Table, pa.Array]:
    """Expand per-message batches into flat level rows, one Arrow column at a time; the second value is
    each row's sort key (2 x the batch's position in the input)."""
    cols: dict[str, list[Any]] = {name: [] for name, _, _ in _DELTA_COLUMNS}
    sides, prices, qtys = cols["side"], cols["price"], cols["qty"]
    keys: list[int] = []
    for i, b in enumerate(batches):
        n = len(b.prices)
        if n == 0:
            continue
        if positions is not None:
            keys += [2 * positions[i]] * n
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
    return pa.Table.from_arrays(arrays, schema=_DELTA_ARROW), pa.array(keys, type=pa.int64())


def _diff_levels_table(events: list[RawEvent], positions: list[int]) -> tuple[pa.Table, pa.Array]:
    """Level rows of applied diffs, column-wise in Arrow; bids of every message, then asks."""
    n = len(events)
    nested = pa.array([e.payload[0] for e in events] + [e.payload[1] for e in events], type=_LEVEL_LISTS)
    parents = pc.list_parent_indices(nested)  # 0..n-1: bids of message i, n..2n-1: asks of message i-n
    is_ask = pc.greater_equal(parents, n)
    frame = pc.if_else(is_ask, pc.subtract(parents, n), parents)
    levels = nested.flatten()
    return _diff_rows(
        events, positions, frame, is_ask, pc.list_element(levels, 0), pc.list_element(levels, 1)
    )


def _block_levels_table(events: list[RawEvent], positions: list[int]) -> tuple[pa.Table, pa.Array]:
    """Level rows of applied diffs whose levels sit in the compiled decoder's blocks (`BlockLevels`):
    gathered in C, decimal texts parsed as for column groups (`_decimal_texts`), in message order
    (bids, then asks, per message)."""
    payloads = [e.payload for e in events]
    px_data, px_off, qty_data, qty_off, frame, ask = gather(
        [p.block for p in payloads], [p.i for p in payloads]
    )
    rows = len(ask)
    prices, qtys = _decimal_texts(rows, px_data, px_off), _decimal_texts(rows, qty_data, qty_off)
    frames = pa.Array.from_buffers(pa.int32(), rows, [None, pa.py_buffer(frame)])
    is_ask = pa.Array.from_buffers(pa.uint8(), rows, [None, pa.py_buffer(ask)]).cast(pa.bool_())
    return _diff_rows(events, positions, frames, is_ask, prices, qtys)


def _decimal_texts(rows: int, data: bytes, offsets: bytes) -> pa.Array:
    """`decimal(38, 18)` of gathered level texts: parsed in C straight into the decimal buffer when every
    text is a plain decimal that fits (exchange texts are), else Arrow's cast of the strings."""
    parsed = decimals(data, offsets, ARROW_DECIMAL.scale)
    if parsed is not None:
        return pa.Array.from_buffers(ARROW_DECIMAL, rows, [None, pa.py_buffer(parsed)])
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data)).cast(ARROW_DECIMAL)


def _int64(data: bytes, n: int) -> pa.Array:
    return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(data)])


def _group_levels_table(groups: list[DepthGroup], positions: list[int]) -> tuple[pa.Table, pa.Array]:
    """Level rows of read column groups (`DepthGroup`): levels gathered in C from the blocks (decimal texts parsed there too), every
    per-message column straight from the groups' int64 buffers (one join per column, no Python object
    per message), per-group constants repeated with `take`. Rows in message order (bids, then asks);
    the second value is each row's sort key (2 x the group's position: a stable sort keeps the rest)."""
    px_data, px_off, qty_data, qty_off, frame, ask, group = gather_groups(
        [g.block for g in groups], [g.pos for g in groups]
    )
    rows, frames = len(ask), len(group) // 4
    prices, qtys = _decimal_texts(rows, px_data, px_off), _decimal_texts(rows, qty_data, qty_off)
    level_frame = pa.Array.from_buffers(pa.int32(), rows, [None, pa.py_buffer(frame)])
    frame_group = pa.Array.from_buffers(pa.int32(), frames, [None, pa.py_buffer(group)])
    level_group = frame_group.take(level_frame)
    is_ask = pa.Array.from_buffers(pa.uint8(), rows, [None, pa.py_buffer(ask)])  # 0 bid, 1 ask
    pus = [g.pu for g in groups]
    if all(pu is not None for pu in pus):
        prev = _int64(b"".join(pus), frames)
    elif all(pu is None for pu in pus):
        prev = pa.nulls(frames, pa.int64())
    else:
        prev = pa.concat_arrays([
            _int64(pu, g.n) if pu is not None else pa.nulls(g.n, pa.int64()) for g, pu in zip(groups, pus, strict=True)
        ])  # fmt: skip
    position = pa.Array.from_buffers(
        pa.int32(), frames, [None, pa.py_buffer(b"".join([g.pos for g in groups]))]
    )
    base = pa.array([g.base for g in groups], pa.int64()).take(frame_group)
    per_frame = {
        "exchange_ts": _int64(b"".join([g.E_us for g in groups]), frames),
        "seq": _int64(b"".join([g.u for g in groups]), frames),
        "first_seq": _int64(b"".join([g.U for g in groups]), frames),
        "prev_seq": prev,
        "source_offset": pc.add(base, position.cast(pa.int64())),
    }
    per_group = {
        "exchange": pa.array([g.exchange for g in groups], pa.string()),
        "market": pa.array([g.market for g in groups], pa.string()),
        "symbol": pa.array([g.symbol for g in groups], pa.string()),
        "exchange_symbol": pa.array([g.exchange_symbol for g in groups], pa.string()),
        "ingest_ts": pa.array([g.ingest_ts_us for g in groups], pa.int64()),
        "shard": pa.array([g.shard for g in groups], pa.int32()),
    }
    arrays = []
    for field in _DELTA_ARROW:
        name = field.name
        if name == "side":
            arrays.append(pa.array([BID, ASK], field.type).take(is_ask))
        elif name == "price":
            arrays.append(prices)
        elif name == "qty":
            arrays.append(qtys)
        elif name == "is_snapshot":
            arrays.append(pa.repeat(pa.scalar(False), rows))
        elif name in per_frame:
            arrays.append(per_frame[name].take(level_frame).cast(field.type))
        else:
            arrays.append(per_group[name].take(level_group).cast(field.type))
    key = pc.multiply(pa.array(positions, pa.int64()).take(level_group), 2)
    return pa.Table.from_arrays(arrays, schema=_DELTA_ARROW), key


def _diff_rows(
    events: list[RawEvent],
    positions: list[int],
    frame: pa.Array,
    is_ask: pa.Array,
    prices: pa.Array,
    qtys: pa.Array,
) -> tuple[pa.Table, pa.Array]:
    """The delta table from per-level (message index, is ask, price, qty: texts or decimals) columns; the second
    value is each row's sort key (2 x the message's position + is ask)."""
    header = {
        "exchange": pa.array([e.exchange for e in events], pa.string()),
        "market": pa.array([e.market for e in events], pa.string()),
        "symbol": pa.array([e.symbol for e in events], pa.string()),
        "exchange_symbol": pa.array([e.exchange_symbol for e in events], pa.string()),
        "exchange_ts": _ts([e.exchange_ts_us for e in events]),
        "ingest_ts": _ts([e.ingest_ts_us for e in events]),
        "seq": pa.array([e.seq for e in events], pa.int64()),
        "first_seq": pa.array([e.first_seq for e in events], pa.int64()),
        "prev_seq": pa.array([e.prev_seq for e in events], pa.int64()),
        "shard": pa.array([e.shard for e in events], pa.int32()),
        "source_offset": pa.array([e.offset for e in events], pa.int64()),
    }
    rows = len(prices)
    arrays = []
    for field in _DELTA_ARROW:
        name = field.name
        if name == "side":
            arrays.append(pc.if_else(is_ask, ASK, BID).cast(field.type))
        elif name == "price":
            arrays.append(prices.cast(ARROW_DECIMAL))
        elif name == "qty":
            arrays.append(qtys.cast(ARROW_DECIMAL))
        elif name == "is_snapshot":
            arrays.append(pa.repeat(pa.scalar(False), rows))
        else:
            arrays.append(header[name].take(frame).cast(field.type))
    key = pc.add(pc.multiply(pc.take(pa.array(positions, pa.int64()), frame), 2), is_ask.cast(pa.int64()))
    return pa.Table.from_arrays(arrays, schema=_DELTA_ARROW), key


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


# ---------------------------------------------------------------------------------------------- gaps
_GAP_COLUMNS = [
    *_COMMON,  # exchange_ts = when the break was noticed (time_to), else the ingest time
    ("stream", StringType(), True),
    ("seq_from", LongType(), False),
    ("seq_to", LongType(), False),
    ("time_from", TimestamptzType(), False),
    ("time_to", TimestamptzType(), False),
    ("reason", StringType(), True),
    *_LINEAGE,
]
GAP_SCHEMA = _schema(_GAP_COLUMNS)
_GAP_ARROW = schema_to_pyarrow(GAP_SCHEMA, include_field_ids=False)


def gaps_to_arrow(rows: Sequence[GapRow]) -> pa.Table:
    cols: dict[str, list[Any]] = {
        "exchange": [r.exchange for r in rows],
        "market": [r.market for r in rows],
        "symbol": [r.symbol for r in rows],
        "exchange_symbol": [r.exchange_symbol for r in rows],
        "exchange_ts": [r.time_to_us if r.time_to_us is not None else r.ingest_ts_us for r in rows],
        "ingest_ts": [r.ingest_ts_us for r in rows],
        "stream": [r.stream for r in rows],
        "seq_from": [r.seq_from for r in rows],
        "seq_to": [r.seq_to for r in rows],
        "time_from": [r.time_from_us for r in rows],
        "time_to": [r.time_to_us for r in rows],
        "reason": [r.reason for r in rows],
        "shard": [r.shard for r in rows],
        "source_offset": [r.offset for r in rows],
    }
    arrays = []
    for f in _GAP_ARROW:
        if f.name in ("exchange_ts", "ingest_ts", "time_from", "time_to"):
            arrays.append(_ts(cols[f.name]))
        else:
            arrays.append(pa.array(cols[f.name], type=f.type))
    return pa.Table.from_arrays(arrays, schema=_GAP_ARROW)


# ------------------------------------------------------------------------------------ book snapshots
# Nested field ids must be unique across the schema: top-level columns take 1..N, nested ones 100+.
def _level_list(first_id: int) -> ListType:
    return ListType(
        element_id=first_id,
        element_type=StructType(
            NestedField(first_id + 1, "price", DECIMAL, required=True),
            NestedField(first_id + 2, "qty", DECIMAL, required=True),
        ),
        element_required=True,
    )


_OB_COLUMNS = [
    *_COMMON,
    ("seq", LongType(), False),
    ("bids", _level_list(100), True),  # best first
    ("asks", _level_list(103), True),
    ("best_bid", DECIMAL, False),
    ("best_ask", DECIMAL, False),
    ("mid", DECIMAL, False),
    ("spread", DECIMAL, False),
    ("verified", BooleanType(), True),
    ("is_checkpoint", BooleanType(), True),
    *_LINEAGE,
]
OB_SCHEMA = _schema(_OB_COLUMNS)
_OB_ARROW = schema_to_pyarrow(OB_SCHEMA, include_field_ids=False)


def _levels_array(books: list[list[tuple[str, str]]], list_type: pa.DataType) -> pa.Array:
    """One level-list column (bids or asks) of book rows: parsed in C straight into the Arrow buffers
    when every side is a list of (price, qty) plain decimal texts (books hand out exactly that), else
    per level in Python and Arrow's string -> decimal cast (which decides what unusual texts mean)."""
    parsed = _levels_in_c(books, list_type)
    return parsed if parsed is not None else _levels_by_cast(books, list_type)


def _levels_in_c(books: list[list[tuple[str, str]]], list_type: pa.DataType) -> pa.Array | None:
    if book_levels is None or not pa.types.is_large_list(list_type):
        return None
    struct_type = list_type.value_type
    if any(struct_type.field(k).type != ARROW_DECIMAL for k in (0, 1)):
        return None
    parsed = book_levels(books, ARROW_DECIMAL.scale)
    if parsed is None:
        return None
    offsets, prices, qtys = parsed
    levels = len(prices) // 16
    values = pa.StructArray.from_arrays(
        [
            pa.Array.from_buffers(ARROW_DECIMAL, levels, [None, pa.py_buffer(prices)]),
            pa.Array.from_buffers(ARROW_DECIMAL, levels, [None, pa.py_buffer(qtys)]),
        ],
        fields=[struct_type.field(0), struct_type.field(1)],
    )
    offsets_array = pa.Array.from_buffers(pa.int64(), len(books) + 1, [None, pa.py_buffer(offsets)])
    return pa.LargeListArray.from_arrays(offsets_array, values, type=list_type)


def _decimal_or_none(values: list[str | None]) -> pa.Array:
    """A nullable decimal column of texts: parsed in C when every text is plain, else Arrow's cast."""
    parsed = decimal_column(values, ARROW_DECIMAL.scale) if decimal_column is not None else None
    if parsed is None:
        return _decimal(values)
    valid, nulls, data = parsed
    buffers = [None if valid is None else pa.py_buffer(valid), pa.py_buffer(data)]
    return pa.Array.from_buffers(ARROW_DECIMAL, len(values), buffers, null_count=nulls)


def _levels_by_cast(books: list[list[tuple[str, str]]], list_type: pa.DataType) -> pa.Array:
    offsets = [0]
    prices: list[str] = []
    qtys: list[str] = []
    for levels in books:
        for price, qty in levels:
            prices.append(price)
            qtys.append(qty)
        offsets.append(len(prices))
    struct_type = list_type.value_type
    values = pa.StructArray.from_arrays(
        [_decimal(prices), _decimal(qtys)], fields=[struct_type.field(0), struct_type.field(1)]
    )
    if pa.types.is_large_list(list_type):  # pyiceberg maps Iceberg lists to Arrow large_list
        return pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), values, type=list_type)
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values, type=list_type)


def book_rows_to_arrow(rows: Sequence[BookRow]) -> pa.Table:
    arrays = []
    for f in _OB_ARROW:
        name = f.name
        if name in ("bids", "asks"):
            arrays.append(_levels_array([getattr(r, name) for r in rows], f.type))
        elif name in ("best_bid", "best_ask", "mid", "spread"):
            arrays.append(_decimal_or_none([getattr(r, name) for r in rows]))
        elif name == "exchange_ts":
            arrays.append(_ts([r.exchange_ts_us for r in rows]))
        elif name == "ingest_ts":
            arrays.append(_ts([r.ingest_ts_us for r in rows]))
        elif name == "source_offset":
            arrays.append(pa.array([r.offset for r in rows], type=f.type))
        else:
            arrays.append(pa.array([getattr(r, name) for r in rows], type=f.type))
    return pa.Table.from_arrays(arrays, schema=_OB_ARROW)


# ------------------------------------------------------------------------------ liquidations, funding
_LIQ_COLUMNS = [
    *_COMMON,  # exchange_ts = the liquidation's trade time
    ("side", StringType(), True),  # side of the liquidated position: long | short
    ("price", DECIMAL, True),
    ("qty", DECIMAL, True),
    ("avg_price", DECIMAL, False),
    ("filled_qty", DECIMAL, False),
    ("status", StringType(), False),
    *_LINEAGE,
]
LIQ_SCHEMA = _schema(_LIQ_COLUMNS)
_LIQ_ARROW = schema_to_pyarrow(LIQ_SCHEMA, include_field_ids=False)

_FUNDING_COLUMNS = [
    *_COMMON,
    ("funding_rate", DECIMAL, False),
    ("next_funding_ts", TimestamptzType(), False),
    ("mark_price", DECIMAL, False),
    ("index_price", DECIMAL, False),
    ("estimated_settle_price", DECIMAL, False),
    *_LINEAGE,
]
FUNDING_SCHEMA = _schema(_FUNDING_COLUMNS)
_FUNDING_ARROW = schema_to_pyarrow(FUNDING_SCHEMA, include_field_ids=False)
_ROW_ATTR = {
    "exchange_ts": "exchange_ts_us",
    "ingest_ts": "ingest_ts_us",
    "next_funding_ts": "next_funding_ts_us",
    "source_offset": "offset",
}


def _rows_to_arrow(rows: Sequence[Any], arrow_schema: pa.Schema) -> pa.Table:
    """Row objects -> Arrow, column by column: decimals from their text, timestamps from UTC µs."""
    arrays = []
    for f in arrow_schema:
        values = [getattr(r, _ROW_ATTR.get(f.name, f.name)) for r in rows]
        if pa.types.is_decimal(f.type):
            arrays.append(_decimal(values))
        elif pa.types.is_timestamp(f.type):
            arrays.append(_ts(values))
        else:
            arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def liquidations_to_arrow(rows: Sequence[LiquidationRow]) -> pa.Table:
    return _rows_to_arrow(rows, _LIQ_ARROW)


def funding_to_arrow(rows: Sequence[FundingRow]) -> pa.Table:
    return _rows_to_arrow(rows, _FUNDING_ARROW)


def _table(name: str, schema: Schema, bucket: int | None, sort: list[str], to_arrow: Callable) -> TableDef:
    spec, order = _spec_and_order(schema, bucket, sort)
    return TableDef(name, schema, spec, order, [(c, "ascending") for c in sort], to_arrow)


TABLES: dict[str, TableDef] = {
    "spot_delta": _table(
        "spot_delta", DELTA_SCHEMA, 16, ["symbol", "exchange_ts", "seq"], level_batches_to_arrow
    ),
    "futures_delta": _table(
        "futures_delta", DELTA_SCHEMA, 16, ["symbol", "exchange_ts", "seq"], level_batches_to_arrow
    ),
    "ticks": _table("ticks", TICK_SCHEMA, None, ["symbol", "exchange_ts", "trade_id"], trades_to_arrow),
    "gaps": _table("gaps", GAP_SCHEMA, None, ["symbol", "exchange_ts"], gaps_to_arrow),
    "spot_ob": _table("spot_ob", OB_SCHEMA, 16, ["symbol", "exchange_ts"], book_rows_to_arrow),
    "futures_ob": _table("futures_ob", OB_SCHEMA, 16, ["symbol", "exchange_ts"], book_rows_to_arrow),
    "liquidations": _table(
        "liquidations", LIQ_SCHEMA, None, ["symbol", "exchange_ts"], liquidations_to_arrow
    ),
    "funding": _table("funding", FUNDING_SCHEMA, None, ["symbol", "exchange_ts"], funding_to_arrow),
}
