"""The spot_ob Arrow build parses level and top-of-book texts in C (`_level_block.book_levels`,
`decimal_column`); it must give the same table as the per-level Python path with Arrow's cast, and every
value must equal the text's exact decimal (checked against Python's `Decimal`, independently of Arrow)."""

from __future__ import annotations

import re
from array import array
from decimal import Decimal
from itertools import accumulate

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cryptoflow.schemas as schemas
from connectors.kraken.parsing import KrakenV1Parser
from connectors.okx.parsing import OkxParser
from cryptoflow.level_block import book_levels, decimal_column, decimals
from cryptoflow.model import BookRow
from operators.book.tracker import KRAKEN, OKX, BookSettings, BookTracker
from tests.support import book_truth as truth

pytestmark = pytest.mark.skipif(book_levels is None, reason="compiled _level_block missing")
SCALE = schemas.ARROW_DECIMAL.scale


def python_path(rows: list[BookRow], monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    """The table as built before the C functions: per-level Python lists and Arrow's string cast."""
    with monkeypatch.context() as m:
        m.setattr(schemas, "book_levels", None)
        m.setattr(schemas, "decimal_column", None)
        return schemas.book_rows_to_arrow(rows)


def exact(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def assert_values_exact(table: pa.Table, rows: list[BookRow]) -> None:
    """Every decimal read back from the table is the row text's exact value (Decimal compares values)."""
    for side in ("bids", "asks"):
        got = table.column(side).to_pylist()
        for levels, row in zip(got, rows, strict=True):
            want = [(Decimal(p), Decimal(q)) for p, q in getattr(row, side)]
            assert [(lv["price"], lv["qty"]) for lv in levels] == want
    for name in ("best_bid", "best_ask", "mid", "spread"):
        assert table.column(name).to_pylist() == [exact(getattr(r, name)) for r in rows]


def book_row(bids, asks, best_bid="1", best_ask="2", mid="1.5", spread="1", i: int = 0) -> BookRow:
    return BookRow("kraken", "spot", "BTC-USD", "XBT/USD", 1_790_000_000_000_000 + i, 1_790_000_000_000_900 + i,
                   None, bids, asks, best_bid, best_ask, mid, spread, True, False, 0, i)  # fmt: skip


def tracked_rows(scheme: str, events) -> list[BookRow]:
    """Rows of real recordings' books, as the flow's tracker emits them (every snapshot and checkpoint)."""
    settings = BookSettings(snapshot_interval_ms=1, checkpoint_interval_ms=2000, snapshot_depth=10)
    trackers: dict[str, BookTracker] = {}
    rows: list[BookRow] = []
    for ev in events:
        rows += trackers.setdefault(ev.symbol, BookTracker(scheme, settings)).on_event(ev).rows
    return rows


def parsed(parser, path) -> list:
    return [ev for i, (_, raw) in enumerate(truth.v1_server_frames(path)) for ev in parser.parse(raw, i)]


@pytest.fixture(scope="module")
def recorded_rows() -> list[BookRow]:
    """Kraken v1 and OKX recordings' books (both checksum-verified by the tracker)."""
    return tracked_rows(KRAKEN, parsed(KrakenV1Parser(), truth.KRAKEN_V1)) + tracked_rows(
        OKX, parsed(OkxParser(), truth.OKX)
    )


def test_recorded_books_build_the_same_table_in_c(recorded_rows, monkeypatch):
    rows = recorded_rows
    assert len(rows) > 100 and any(r.is_checkpoint for r in rows)
    assert {r.exchange for r in rows} == {"kraken", "okx"}
    assert book_levels([r.bids for r in rows], SCALE) is not None  # exchange texts take the C path
    table = schemas.book_rows_to_arrow(rows)
    assert table.equals(python_path(rows, monkeypatch))
    assert_values_exact(table, rows)


def test_benchmark_rows_take_the_c_path_and_match(monkeypatch):
    from benchmarks.sink_stages import book_rows

    rows = book_rows(500)
    assert decimal_column([r.mid for r in rows], SCALE) is not None
    table = schemas.book_rows_to_arrow(rows)
    assert table.equals(python_path(rows, monkeypatch))
    assert_values_exact(table, rows)


PLAIN_EDGES = [
    "0", "0.0", "000123.4500", "1", "0.000000000000000001",  # 18 fraction digits: the smallest step
    "99999999999999999999.999999999999999999",  # 38 digits: the largest decimal(38, 18)
    "12345678901234567890.5",  # more than 19 digits: past the 64-bit fast path
    "18446744073709551615", "18446744073709551616",  # around 2^64
    "0000000000000000000000000000000000000000007",  # leading zeros do not count as integer digits
]  # fmt: skip


@pytest.mark.parametrize("text", PLAIN_EDGES)
def test_plain_edge_texts_parse_in_c_exactly(text, monkeypatch):
    rows = [book_row([(text, text)], [(text, "1")], best_bid=text, mid=text)]
    assert book_levels([rows[0].bids], SCALE) is not None and decimal_column([text], SCALE) is not None
    table = schemas.book_rows_to_arrow(rows)
    assert table.equals(python_path(rows, monkeypatch))
    assert_values_exact(table, rows)


UNUSUAL = ["1e5", "1E-3", "-5.25", "+1", "-0", " 1", "1 ", ".5", "5.", "1_000", "١٢", "Infinity", "0x10", ""]


@pytest.mark.parametrize("text", UNUSUAL)
def test_unusual_texts_leave_the_column_to_arrows_cast(text, monkeypatch):
    """C declines (None) and the table is exactly what Arrow's cast makes of the text, error or value."""
    assert book_levels([[("1", "1"), (text, "2")]], SCALE) is None
    assert book_levels([[("1", text)]], SCALE) is None
    assert decimal_column(["1", None, text], SCALE) is None
    rows = [book_row([("1", "1"), (text, "2")], [("3", text)], best_ask=text, spread=text)]
    try:
        expected = python_path(rows, monkeypatch)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        with pytest.raises(type(exc)):
            schemas.book_rows_to_arrow(rows)
        return
    table = schemas.book_rows_to_arrow(rows)
    assert table.equals(expected)
    assert table.column("bids").to_pylist()[0][1]["price"] == Decimal(text)


@pytest.mark.parametrize(
    "text",
    [
        "0.0000000000000000001",  # 19 fraction digits: more than the table holds
        "100000000000000000000",  # 21 integer digits: more than decimal(38, 18) holds
        "1" * 60,
    ],
)
def test_texts_beyond_decimal_38_18_fail_as_before(text, monkeypatch):
    """C declines; Arrow's cast then refuses exactly as it did without the C path."""
    assert book_levels([[(text, "1")]], SCALE) is None and decimal_column([text], SCALE) is None
    rows = [book_row([(text, "1")], [], best_bid=text)]
    with pytest.raises(pa.ArrowInvalid):
        python_path(rows, monkeypatch)
    with pytest.raises(pa.ArrowInvalid):
        schemas.book_rows_to_arrow(rows)


def test_empty_sides_and_missing_top_of_book(monkeypatch):
    rows = [
        book_row([], [], None, None, None, None, i=0),
        book_row([("10.5", "1")], [], "10.5", None, None, None, i=1),
        book_row([], [("11", "2"), ("12", "0.5")], None, "11", None, None, i=2),
        book_row([("10.5", "1")], [("11", "2")], "10.5", "11", "10.75", "0.5", i=3),
    ] * 3  # more than 8 rows: the validity bitmap spans bytes
    table = schemas.book_rows_to_arrow(rows)
    expected = python_path(rows, monkeypatch)
    assert table.equals(expected)
    assert table.column("best_ask").null_count == 6 and table.column("mid").null_count == 9
    assert table.column("bids").to_pylist()[0] == [] and table.column("asks").to_pylist()[1] == []
    assert_values_exact(table, rows)
    table.validate(full=True)


def test_all_top_of_book_present_has_no_validity_bitmap():
    valid, nulls, data = decimal_column(["1.5", "2"], SCALE)
    assert valid is None and nulls == 0
    assert int.from_bytes(data[:16], "little", signed=True) == 15 * 10**17


def test_levels_as_lists_or_tuples_and_other_shapes(monkeypatch):
    """Lists of [price, qty] (other parsers' shape) take the C path too; anything else declines."""
    rows = [book_row([["1.25", "3"]], (("2", "4"),))]
    assert book_levels([rows[0].bids, rows[0].asks], SCALE) is not None
    assert book_levels((rows[0].bids, rows[0].asks), SCALE) == book_levels(
        [rows[0].bids, rows[0].asks], SCALE
    )
    with pytest.raises(TypeError):
        book_levels(iter([rows[0].bids]), SCALE)
    assert schemas.book_rows_to_arrow(rows).equals(python_path(rows, monkeypatch))
    for odd in ([("1", "2", "3")], [("1",)], [(1, "2")], [("1", b"2")], [None], "12"):
        assert book_levels([odd], SCALE) is None
    assert decimal_column([1.5], SCALE) is None


PLAIN = re.compile(r"[0-9]+(\.[0-9]+)?")


def c_accepts(text: str, scale: int = SCALE) -> int | None:
    """What the C parser must give for `text`, by string arithmetic: the scaled integer when the text is
    a plain decimal with at most `scale` fraction digits and at most 38 - `scale` significant integer
    digits, else None (declined)."""
    if not PLAIN.fullmatch(text):
        return None
    whole, _, frac = text.partition(".")
    if len(frac) > scale or len(whole.lstrip("0")) > 38 - scale:
        return None
    return int(whole + frac.ljust(scale, "0"))


texts = st.one_of(
    st.from_regex(r"\A[0-9]{1,40}(\.[0-9]{1,22})?\Z", fullmatch=True),  # plain, short and long
    st.from_regex(r"\A0{0,30}[0-9]{0,21}\.?[0-9]{0,20}\Z", fullmatch=True),  # leading zeros, bare dots
    st.text(alphabet="0123456789.-+eE ", max_size=25),  # near misses
)


@settings(max_examples=400, deadline=None)
@given(values=st.lists(texts, min_size=1, max_size=6), scale=st.sampled_from([0, 2, 8, 18, 19, 30, 38]))
def test_c_parser_equals_decimal_on_generated_texts(values, scale):
    """Every generated text through the three C entry points, against `c_accepts`: one declined text declines
    the whole column; otherwise each 16-byte value is the exact scaled integer."""
    want = [c_accepts(t, scale) for t in values]
    got_column = decimal_column(list(values), scale)
    got_levels = book_levels([[(t, "0") for t in values]], scale)  # qty "0" fits every scale
    raw = [t.encode() for t in values]
    offsets = array("i", [0, *accumulate(len(b) for b in raw)]).tobytes()
    got_texts = decimals(b"".join(raw), offsets, scale)  # the delta table's entry point
    if any(w is None for w in want):
        assert got_column is None and got_levels is None and got_texts is None
        return
    _, nulls, data = got_column
    assert nulls == 0 and data == got_levels[1] == got_texts
    assert [
        int.from_bytes(data[16 * k : 16 * k + 16], "little", signed=True) for k in range(len(values))
    ] == want
