"""`sort_rows` skips the sort only for rows already in order, and always equals Arrow's stable sort."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from connectors.iceberg.ordering import in_sort_order, sort_rows
from cryptoflow.schemas import TABLES

KEYS = TABLES["spot_delta"].sort_keys  # symbol, exchange_ts, seq: all ascending


def rows(symbols: list[str], ts: list[int | None], seq: list[int]) -> pa.Table:
    """Key columns plus a row id that shows where each row went."""
    return pa.table(
        {
            "symbol": pa.array(symbols, pa.string()),
            "exchange_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "seq": pa.array(seq, pa.int64()),
            "row": pa.array(range(len(seq)), pa.int64()),
        }
    )


def test_rows_in_order_come_back_as_they_are() -> None:
    table = rows(["BTCUSDT", "BTCUSDT", "BTCUSDT", "ETHUSDT"], [5, 5, 6, 1], [1, 1, 2, 0])
    assert in_sort_order(table, KEYS)
    assert sort_rows(table, KEYS).equals(table)


@pytest.mark.parametrize(
    ("symbols", "ts", "seq"),
    [
        (["ETHUSDT", "BTCUSDT"], [1, 2], [1, 2]),  # first key out of order
        (["BTCUSDT", "BTCUSDT"], [2, 1], [1, 2]),  # second key, first tied
        (["BTCUSDT", "BTCUSDT"], [1, 1], [2, 1]),  # last key, the others tied
        (["BTCUSDT", "BTCUSDT", "BTCUSDT"], [1, 2, 1], [1, 2, 3]),  # a later row out of order
    ],
)
def test_rows_out_of_order_are_sorted(symbols: list[str], ts: list[int], seq: list[int]) -> None:
    table = rows(symbols, ts, seq)
    assert not in_sort_order(table, KEYS)
    assert sort_rows(table, KEYS).equals(table.sort_by(KEYS))


def test_a_later_key_does_not_count_once_an_earlier_one_orders_the_rows() -> None:
    table = rows(["BTCUSDT", "ETHUSDT"], [9, 1], [9, 1])  # later keys fall, but the symbol rises
    assert in_sort_order(table, KEYS)


def test_an_unknown_key_is_an_error_even_for_one_row() -> None:
    with pytest.raises(KeyError, match="no_such_column"):
        sort_rows(rows(["BTCUSDT"], [1], [1]), [("no_such_column", "ascending")])
    with pytest.raises(KeyError, match="upwards"):
        sort_rows(rows([], [], []), [("seq", "upwards")])


def test_a_null_key_leaves_the_order_to_arrow() -> None:
    table = rows(["BTCUSDT"] * 3, [None, 1, 2], [1, 2, 3])  # a REST snapshot's rows have no event time
    assert not in_sort_order(table, KEYS)
    assert sort_rows(table, KEYS).column("seq").to_pylist() == [2, 3, 1]  # Arrow puts nulls last


def test_descending_keys() -> None:
    keys = [("exchange_ts", "descending")]
    assert in_sort_order(rows(["A"] * 3, [3, 2, 2], [0, 0, 0]), keys)
    assert not in_sort_order(rows(["A"] * 3, [2, 3, 1], [0, 0, 0]), keys)


def test_no_rows_one_row_and_no_keys_are_in_order() -> None:
    assert in_sort_order(rows([], [], []), KEYS)
    assert in_sort_order(rows(["BTCUSDT"], [1], [1]), KEYS)
    assert in_sort_order(rows(["B", "A"], [1, 1], [1, 1]), [])


def test_chunked_columns_compare_across_chunk_boundaries() -> None:
    """The sink's writes are many IPC pieces concatenated: a boundary row must be compared too."""
    first, second = rows(["BTCUSDT"] * 2, [1, 5], [1, 2]), rows(["BTCUSDT"] * 2, [4, 6], [3, 4])
    table = pa.concat_tables([first, second])
    assert table.column("exchange_ts").num_chunks == 2
    assert not in_sort_order(table, KEYS)
    assert sort_rows(table, KEYS).column("seq").to_pylist() == [1, 3, 2, 4]
    in_order = pa.concat_tables([first, rows(["BTCUSDT"] * 2, [5, 6], [3, 4])])
    assert in_sort_order(in_order, KEYS)
    combined = sort_rows(in_order, KEYS)
    assert combined.equals(in_order) and {c.num_chunks for c in combined.columns} == {1}


@pytest.mark.parametrize("seed", range(40))
def test_same_rows_and_order_as_arrows_stable_sort(seed: int) -> None:
    """Random tables of a few chunks with many ties, half of them sorted first: the same rows in the
    same order as Arrow's sort, whether the sort was skipped or not."""
    rng = random.Random(seed)
    n = rng.randrange(0, 60)
    table = rows(
        [rng.choice(["BTCUSDT", "ETHUSDT", "SOLUSDT"]) for _ in range(n)],
        [rng.randrange(3) for _ in range(n)],
        [rng.randrange(3) for _ in range(n)],
    )
    if seed % 2:
        table = table.sort_by(KEYS)
    cuts = sorted(rng.sample(range(n + 1), min(n + 1, 4)))  # the sink's writes are many pieces
    table = pa.concat_tables([table.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, n], strict=True)])
    expected = table.sort_by(KEYS)
    result = sort_rows(table, KEYS)
    assert result.equals(expected)
    assert all(c.num_chunks <= 1 for c in result.columns)  # one chunk for the Parquet writer
    assert in_sort_order(table, KEYS) == table.column("row").equals(expected.column("row"))


def test_the_benchmarks_rows_are_what_it_says() -> None:
    """`benchmarks.sort_rows` times a one-symbol write that needs no sort against an interleaved one that
    does, both in the child's many chunks: if its rows stopped being that, its numbers would mislead."""
    from benchmarks.sort_rows import as_the_child_reads_it, delta_rows

    one = as_the_child_reads_it(delta_rows(2_000, symbols=1))
    assert one.column("symbol").num_chunks == 8 and one.schema == TABLES["spot_delta"].arrow_schema
    assert in_sort_order(one, KEYS) and sort_rows(one, KEYS).equals(one)
    interleaved = as_the_child_reads_it(delta_rows(2_000, symbols=4))
    assert not in_sort_order(interleaved, KEYS)
    assert sort_rows(interleaved, KEYS).equals(interleaved.sort_by(KEYS))
