"""The compiled book side (operators/book/_levels.c): exchange text rebuilt byte for byte, the same
behaviour as the pure-Python side on random streams, strict input checks, compact exact snapshots, and
the memory bound it exists for. The project's install (`make test`, `.ci/run`) builds the extension, so
a missing build fails here instead of silently testing only the pure-Python fallback; set
CRYPTOFLOW_PURE_PYTHON_BOOK=1 on a machine without a C compiler to skip these on purpose."""

from __future__ import annotations

import copy
import os
import pickle
import random
import tracemalloc
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoflow.model import Kind, RawEvent
from operators.book.checksums import kraken_checksum, okx_checksum
from operators.book.levels import SIDES, OrderBook, PySide
from operators.book.tracker import BYBIT, BookSettings, BookTracker
from operators.book_logic import BookLogic

CSide = SIDES.get("c")
PURE_PYTHON_CHOSEN = os.environ.get("CRYPTOFLOW_PURE_PYTHON_BOOK") == "1"
pytestmark = pytest.mark.skipif(PURE_PYTHON_CHOSEN, reason="CRYPTOFLOW_PURE_PYTHON_BOOK=1: fallback chosen")


def test_the_compiled_side_is_built_and_is_the_default():
    assert CSide is not None, "operators/book/_levels.c is not compiled: run `pip install -e .` (needs gcc)"
    assert OrderBook(10).bids.__class__ is CSide


def _canonical(whole: int, frac: str) -> str:
    return f"{whole}.{frac}" if frac else str(whole)


# Canonical decimal text as exchanges write it, at the extremes the C side accepts: up to 20 integer
# digits and 18 decimals for prices, up to 18 digits for quantities, trailing zeros kept.
frac = st.text("0123456789", min_size=0, max_size=18)
price_text = st.builds(_canonical, st.integers(0, 10**20 - 1), frac)
qty_text = st.builds(_canonical, st.integers(1, 10**9), st.text("0123456789", max_size=8)) | st.builds(
    _canonical, st.just(0), st.text("0123456789", min_size=1, max_size=17).filter(lambda f: f.strip("0"))
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(price_text, qty_text), min_size=1, max_size=30))
def test_texts_come_back_byte_identical(levels):
    """Each held level is the newest (price text, qty text) sent for its value ("1.5" and "1.50" are one
    level), best first."""
    side = CSide(descending=True)
    newest: dict[Decimal, tuple[str, str]] = {}
    for price, qty in levels:
        side.set(price, qty)
        newest[Decimal(price)] = (price, qty)
    assert side.top(len(levels)) == [newest[v] for v in sorted(newest, reverse=True)]
    for price, qty in newest.values():
        assert side.get(price) == qty and price in side


def _random_stream(rng: random.Random, n: int) -> list[tuple[list, list]]:
    """Messages around a mid of 1000 with varied decimals and writings ("1.5" / "1.50"), deletes of held
    and unheld prices, and now and then a level far away."""
    out = []
    for _ in range(n):
        msg: tuple[list, list] = ([], [])
        for _ in range(rng.randint(0, 8)):
            bid = rng.random() < 0.5
            ticks = rng.randint(1, 60) if rng.random() < 0.95 else rng.randint(1, 5000)
            price = (1000 * 100 - ticks) if bid else (1000 * 100 + ticks)
            text = f"{price / 100:.2f}"
            if rng.random() < 0.1:
                text = text.rstrip("0").rstrip(".")
            qty = "0" if rng.random() < 0.25 else f"{rng.randint(1, 10**6) / 1000:.{rng.randint(3, 8)}f}"
            msg[0 if bid else 1].append([text, qty])
        out.append(msg)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_same_behaviour_as_the_python_side(seed):
    rng = random.Random(seed)
    cap = rng.choice([5, 20, 200, 10_000])
    c_book, py_book = OrderBook(cap, side=CSide), OrderBook(cap, side=PySide)
    stream = _random_stream(rng, 400)
    snap = stream[0]
    c_book.load(*snap)
    py_book.load(*snap)
    for i, (bids, asks) in enumerate(stream[1:]):
        assert c_book.apply(bids, asks) == py_book.apply(bids, asks)
        if i % 97 == 13:  # exchange-side truncation (Kraken) does not set the horizon
            for book in (c_book, py_book):
                book.bids.truncate(cap // 2 + 1, remember=False)
                book.asks.truncate(cap // 2 + 1, remember=False)
        for c_side, py_side in ((c_book.bids, py_book.bids), (c_book.asks, py_book.asks)):
            assert c_side.top(len(py_side) + 1) == py_side.top(len(py_side) + 1)
            assert (len(c_side), c_side.horizon, c_side.best_key()) == (
                len(py_side),
                py_side.horizon,
                py_side.best_key(),
            )
        assert c_book.crossed() == py_book.crossed()
        # the compiled side's Kraken checksum input is built from integers, not from the text
        assert kraken_checksum(c_book) == kraken_checksum(py_book)
        assert okx_checksum(c_book) == okx_checksum(py_book)


@pytest.mark.parametrize("price", ["01.5", "+1", "-1", "1e5", "1.", ".5", "1.2.3", "", "abc", "1 ", "0x10"])
def test_non_canonical_prices_are_rejected(price):
    side = CSide(descending=False)
    with pytest.raises(ValueError):
        side.set(price, "1")
    assert len(side) == 0


@pytest.mark.parametrize("qty", ["01", "+1", "1e-8", "1.", ".5", "nan", "99999999999999999999"])
def test_non_canonical_quantities_are_rejected(qty):
    side = CSide(descending=False)
    with pytest.raises(ValueError):
        side.set("1.5", qty)


class _Text(str):
    """A str subclass: its characters are not stored inline (not a compact str), unlike parsed JSON's."""


def test_texts_read_inline_or_not_parse_the_same_and_non_ascii_digits_are_refused():
    """The side reads compact ASCII str bytes in place and every other str through the C API."""
    plain, other = CSide(descending=True), CSide(descending=True)
    plain.apply([["101.25", "0.50"], ["100.5", "2"], ["99", "0"]])
    other.apply([[_Text("101.25"), _Text("0.50")], [_Text("100.5"), "2"], ["99", _Text("0")]])
    assert plain.top(5) == other.top(5) == [("101.25", "0.50"), ("100.5", "2")]
    for price, qty in (
        ("\uff11.5", "1"),
        ("1.5", "\uff11"),
        ("1.5", "1\u00e9"),
        ("\u0661", "1"),
    ):  # non-ASCII digits
        with pytest.raises(ValueError):
            other.set(price, qty)
    assert other.top(5) == plain.top(5)


def test_kraken_digits_of_small_and_zero_prices():
    side = CSide(descending=False)
    side.load([["0.00", "0.0500"], ["0.01", "10"], ["12.340", "0.00001"]])
    expected = b"".join(p.replace(".", "").lstrip("0").encode() + q.replace(".", "").lstrip("0").encode()
                        for p, q in side.top(3))  # fmt: skip
    assert side.kraken_digits(10) == expected == b"500110123401"


def test_zero_in_any_writing_deletes_and_bad_shapes_raise():
    side = CSide(descending=True)
    side.load([["2.5", "1"], ["2.4", "1"], ["2.3", "1"]])
    for zero in ("0E-8", "0.00000000", "0"):
        side.set(side.best()[0], zero)
    assert len(side) == 0
    with pytest.raises(TypeError):
        side.set(2.5, "1")
    with pytest.raises(TypeError):
        side.apply([["2.5", None]])
    with pytest.raises(IndexError):
        side.apply([["2.5"]])
    with pytest.raises(ValueError):
        side.set("1" + "0" * 20, "1")  # 1e20: beyond decimal(38, 18)


@pytest.mark.parametrize("restore", [lambda s: pickle.loads(pickle.dumps(s)), copy.deepcopy, copy.copy])
def test_snapshot_restores_exactly_and_independently(restore):
    side = CSide(descending=False)
    side.load([[f"{100 + i / 8:.3f}", f"{i + 1}.{i:04d}"] for i in range(50)])
    side.truncate(30)  # sets the horizon
    twin = restore(side)
    assert twin.top(100) == side.top(100) and twin.horizon == side.horizon and twin.descending is False
    twin.set("100.000", "0")
    twin.set("99.5", "7")
    assert side.get("100.000") is not None and side.get("99.5") is None
    assert len(pickle.dumps(side)) < 100 + 32 * 30  # one flat byte string, not an object per level
    assert pickle.dumps(side) == pickle.dumps(copy.copy(side))  # equal books, equal bytes


def test_corrupt_snapshot_state_is_refused():
    side = CSide(descending=True)
    with pytest.raises(ValueError):
        side.__setstate__(b"\x07" * 40)


def test_resting_level_costs_at_most_100_bytes():
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    book = OrderBook(depth_cap=20_000, side=CSide)
    for i in range(20_000):  # level by level, as a live book grows
        book.apply(
            [[f"{(3_000_000 - i) / 100:.2f}", f"{(i + 1) / 7:.8f}"]],
            [[f"{(3_000_001 + i) / 100:.2f}", "1.5"]],
        )
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(book) == 40_000
    assert (after - before) / len(book) <= 100


def _event(kind: Kind, u: int, bids: list, asks: list) -> RawEvent:
    return RawEvent("bybit", "spot", "X-Y", "XY", kind, u * 40_000, u, 0, u, (bids, asks), seq=u)


def test_book_logic_resumes_from_its_snapshot_exactly():
    rng = random.Random(5)
    stream = _random_stream(rng, 300)
    settings_ = BookSettings(depth_cap=50, snapshot_interval_ms=100, checkpoint_interval_ms=400)
    events = [_event(Kind.DEPTH_SNAPSHOT, 1, [["999.00", "1"]], [["1001.00", "1"]])]
    events += [_event(Kind.DEPTH_DIFF, u, b, a) for u, (b, a) in enumerate(stream, start=2)]
    straight = BookLogic(BYBIT, settings_)
    expected = [straight.on_item(ev)[0] for ev in events]
    logic = BookLogic(BYBIT, settings_)
    got = []
    for i, ev in enumerate(events):
        if i % 37 == 0:
            state = logic.snapshot()
            assert isinstance(state, bytes)
            logic = BookLogic(None, settings_, state)
        got.append(logic.on_item(ev)[0])
    assert got == expected
    assert any(rows for rows in got)


def test_book_logic_still_resumes_from_a_pickled_tracker():
    """Recovery data written before snapshots were bytes holds the tracker itself."""
    tracker = BookTracker(BYBIT)
    tracker.on_event(_event(Kind.DEPTH_SNAPSHOT, 1, [["999.00", "1"]], [["1001.00", "1"]]))
    logic = BookLogic(None, BookSettings(), pickle.loads(pickle.dumps(tracker)))
    assert logic.tracker is not None and logic.tracker.book.best_bid() == ("999.00", "1")


def test_recovery_data_from_the_pure_python_side_restores_into_compiled_sides():
    """Recovery data written before the compiled side existed pickled `PySide` objects under the name
    `operators.book.levels.Side`; they load as compiled sides with the same levels and horizon."""
    tracker = BookTracker(BYBIT, BookSettings(depth_cap=3))
    tracker.book = OrderBook(3, side=PySide)
    snap = [["999.00", "1"], ["998.5", "2.50"], ["998.00", "3"], ["997.00", "4"]]
    tracker.on_event(_event(Kind.DEPTH_SNAPSHOT, 1, snap, [["1001.00", "1"], ["1002.0", "0.5"]]))
    assert tracker.book.bids.horizon is not None  # the snapshot was cut to 3 levels
    old = pickle.dumps(tracker, protocol=2)  # class references as text: rename PySide to its old name
    old = old.replace(b"operators.book.levels\nPySide\n", b"operators.book.levels\nSide\n")
    assert b"\nPySide\n" not in old
    logic = BookLogic(None, BookSettings(depth_cap=3), pickle.loads(old))
    restored = logic.tracker
    assert restored is not None and type(restored.book.bids) is CSide
    for mine, theirs in ((restored.book.bids, tracker.book.bids), (restored.book.asks, tracker.book.asks)):
        assert mine.top(10) == theirs.top(10) and mine.horizon == theirs.horizon
    logic.on_item(_event(Kind.DEPTH_DIFF, 2, [["998.5", "7"]], []))
    assert restored.book.bids.top(2) == [("999.00", "1"), ("998.5", "7")]
