"""Property-based tests: the engine's book against a naive reference (tests/support/book_truth.NaiveBook:
two Decimal dicts, sorted on every read) over random streams of snapshots and level updates, for every
side implementation (`levels.SIDES`: the compiled one and the pure-Python fallback)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.book.levels import SIDES, OrderBook, price_key
from tests.support.book_truth import NaiveBook


def _text(whole: int, frac: str, zeros: int) -> str:
    if frac:
        return f"{whole}.{frac}{'0' * zeros}"
    return f"{whole}.{'0' * zeros}" if zeros else str(whole)


# Prices as exchanges write them: varying decimals, trailing zeros, integers.
decimals_text = st.builds(
    _text, st.integers(0, 120), st.sampled_from(["", "1", "25", "5", "125", "0001", "99"]), st.integers(0, 3)
)
qty_text = st.one_of(st.just("0"), st.just("0.000"), decimals_text)
level = st.tuples(decimals_text, qty_text)
message = st.tuples(st.lists(level, max_size=8), st.lists(level, max_size=8))


each_side = pytest.mark.parametrize("impl", list(SIDES.values()), ids=list(SIDES))


def _same_side(engine: list[tuple[str, str]], reference: list[tuple[Decimal, Decimal]]) -> bool:
    return [(Decimal(p), Decimal(q)) for p, q in engine] == reference


@each_side
@settings(max_examples=300, deadline=None)
@given(st.lists(message, min_size=1, max_size=40), st.integers(1, 12))
def test_book_is_an_exact_prefix_of_the_naive_reference(impl, messages, cap):
    """With a depth cap the engine keeps the best `cap` levels and ignores updates beyond the worst
    level it kept (their neighbours are unknown): each side must be exactly the best levels of the full
    reference book, and complete (min(cap, reference size)) while nothing has been cut since the load."""
    book, ref = OrderBook(depth_cap=cap, side=impl), NaiveBook()
    (bids, asks), *rest = messages
    book.load(bids, asks)
    ref.load(bids, asks)
    for bids, asks in [([], []), *rest]:
        book.apply(bids, asks)
        ref.apply(bids, asks)
        for side, full in ((book.bids, ref.top_bids()), (book.asks, ref.top_asks())):
            mine = side.top(cap + 1)
            assert len(mine) <= cap
            assert _same_side(mine, full[: len(mine)])
            if side.horizon is None:
                assert len(mine) == min(cap, len(full))
        if book.bids.horizon is None and book.asks.horizon is None:
            assert book.crossed() == bool(ref.bids and ref.asks and max(ref.bids) >= min(ref.asks))


@each_side
@settings(max_examples=300, deadline=None)
@given(st.lists(message, min_size=1, max_size=40))
def test_uncapped_book_equals_naive_reference(impl, messages):
    book, ref = OrderBook(depth_cap=10_000, side=impl), NaiveBook()
    for bids, asks in messages:
        book.apply(bids, asks)
        ref.apply(bids, asks)
        assert _same_side(book.bids.top(10_000), ref.top_bids())
        assert _same_side(book.asks.top(10_000), ref.top_asks())
        assert book.crossed() == bool(ref.bids and ref.asks and max(ref.bids) >= min(ref.asks))
        best = book.best_bid()
        assert (best is None) == (not ref.bids)
        if best is not None:
            assert Decimal(best[0]) == max(ref.bids)


@given(decimals_text, decimals_text)
def test_price_key_orders_exactly_like_decimal(a, b):
    assert (price_key(a) < price_key(b)) == (Decimal(a) < Decimal(b))
    assert (price_key(a) == price_key(b)) == (Decimal(a) == Decimal(b))


@given(st.decimals(min_value=0, max_value=10**9, places=12, allow_nan=False, allow_infinity=False))
def test_price_key_handles_exponent_text(d):
    text = str(d)  # Decimal prints tiny values as '1E-10'
    assert price_key(text) == int(d.scaleb(18))


@each_side
def test_same_price_written_differently_is_one_level(impl):
    book = OrderBook(side=impl)
    book.apply([["1.50", "2"]], [])
    book.apply([["1.5", "3"]], [])
    assert len(book.bids) == 1 and book.best_bid() == ("1.5", "3")
    book.apply([["1.500", "0"]], [])
    assert len(book.bids) == 0
