"""Property-based test of the tracker over random id-sequenced streams (Bybit rule: each delta carries
previous `u` + 1) with random drops, duplicates and swaps: rows always equal the naive reference at
their id, clean streams never report a gap, broken ones always do, and resync restores the book."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoflow.model import Kind, RawEvent
from operators.book.tracker import BYBIT, BookSettings, BookTracker
from tests.support.book_truth import NaiveBook

price = st.integers(90, 110).map(lambda p: f"{p}.0")
qty = st.sampled_from(["0", "1", "2.5", "10"])
bids = st.lists(st.tuples(st.integers(90, 99).map(lambda p: f"{p}.0"), qty), max_size=4)
asks = st.lists(st.tuples(st.integers(101, 110).map(lambda p: f"{p}.0"), qty), max_size=4)


def _event(kind: Kind, u: int, b, a) -> RawEvent:
    return RawEvent("bybit", "spot", "X-Y", "XY", kind, u * 50_000, 0, 0, u, ([list(x) for x in b],
                    [list(x) for x in a]), seq=u)  # fmt: skip


def _refs(snapshot, deltas) -> list[NaiveBook]:
    book = NaiveBook()
    book.load(*snapshot)
    out = [book.copy()]
    for b, a in deltas:
        book.apply(b, a)
        out.append(book.copy())
    return out


def _text(book: NaiveBook):
    return ([[format(p, "f"), format(q, "f")] for p, q in book.top_bids()],
            [[format(p, "f"), format(q, "f")] for p, q in book.top_asks()])  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.tuples(bids, asks),
    st.lists(st.tuples(bids, asks), min_size=2, max_size=30),
    st.lists(st.tuples(st.sampled_from(["drop", "dup", "swap"]), st.integers(1, 29)), max_size=3),
)
def test_tracker_rows_are_always_right(snapshot, deltas, edits):
    refs = _refs(snapshot, deltas)
    order = list(range(1, len(deltas) + 1))  # delta u values
    for op, at in edits:
        i = at % len(order)
        if op == "drop":
            if len(order) > 1:  # keep at least one delta
                del order[i]
        elif op == "dup":
            order.insert(i, order[i])
        elif i + 1 < len(order):
            order[i], order[i + 1] = order[i + 1], order[i]
    tracker = BookTracker(BYBIT, BookSettings(snapshot_interval_ms=1, checkpoint_interval_ms=1))
    tracker.on_event(_event(Kind.DEPTH_SNAPSHOT, 0, *snapshot))
    newest, gaps = 0, 0
    for u in order:
        newest = max(newest, u)
        step = tracker.on_event(_event(Kind.DEPTH_DIFF, u, *deltas[u - 1]))
        for row in step.rows:
            ref = refs[row.seq]
            assert [(Decimal(p), Decimal(q)) for p, q in row.bids] == ref.top_bids()
            assert [(Decimal(p), Decimal(q)) for p, q in row.asks] == ref.top_asks()
        if step.resync:
            gaps += 1
            tracker.on_event(_event(Kind.DEPTH_SNAPSHOT, newest, *_text(refs[newest])))
    # independent oracle: the fed ids are clean iff, ignoring repeats, they count 1, 2, 3, ...
    firsts = list(dict.fromkeys(order))
    clean = firsts == list(range(1, len(firsts) + 1)) and all(
        order[j] <= max(order[:j], default=0) or order[j] == max(order[:j], default=0) + 1
        for j in range(len(order))
    )
    assert (gaps == 0) == clean
    assert tracker.valid
    final = refs[max(order)]
    assert [(Decimal(p), Decimal(q)) for p, q in tracker.book.bids.top(1000)] == final.top_bids()
    assert [(Decimal(p), Decimal(q)) for p, q in tracker.book.asks.top(1000)] == final.top_asks()
