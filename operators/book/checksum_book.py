"""Kraken's book rules, once: how a snapshot or an update changes the book and when the book is broken.

Why one place: Kraken has no sequence numbers; a lost message shows only as a checksum mismatch, and
only the client can resubscribe (a fresh snapshot). So two parties judge every Kraken book message: the
connector, which keeps a checksum-only copy of each book to decide resubscribes, and the dataflow's
`BookTracker` (scheme `kraken`), which writes the gap row. Both call `load_snapshot` / `apply_update`
below, so they break on the same message for the same reason by construction.

`KrakenChecksumBook` is the connector's copy: two compiled sides (operators/book/_levels.c) and these
rules, nothing else (no rows, counters, gap rows or `Step` objects).

On compiled sides a whole message is one C call (`_levels.kraken_step`: the same steps in the same
order, so the same verdicts, books and errors; tests/unit/test_kraken_step.py drives both on the same
streams). The Python steps below stay the reference and run on pure-Python sides.
"""

from __future__ import annotations

from cryptoflow.model import Kind, RawEvent
from operators.book.checksums import kraken_checksum
from operators.book.levels import CSide, OrderBook

try:  # one C call per message on compiled sides
    from operators.book._levels import kraken_step
except ImportError:  # pragma: no cover - only without a C compiler (or a build older than this file)
    kraken_step = None
_STEP_SIDE = CSide if kraken_step is not None else None  # the side type `kraken_step` works on

# Why a book broke (the `gaps.reason` values `BookTracker` writes for them).
CHECKSUM = "checksum"
CROSSED = "crossed"
BAD_EVENT = "bad_event"
BAD_INPUT = (ValueError, TypeError, IndexError, KeyError, AttributeError, ArithmeticError)
_SNAPSHOT, _DIFF = Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF  # module globals: `Kind.X` is ~0.1 us a use on 3.11


def load_snapshot(book: OrderBook, ev: RawEvent) -> str | None:
    """Replace `book` with the snapshot `ev`; returns `CHECKSUM` / `CROSSED` if the result is broken.
    Raises one of `BAD_INPUT` on a malformed level (the book may be half loaded then)."""
    bids, asks = ev.payload
    sides = book.bids
    if type(sides) is _STEP_SIDE:
        return kraken_step(sides, book.asks, bids, asks, True, book.depth_cap, ev.book_depth, ev.checksum)
    return python_load_snapshot(book, ev)


def apply_update(book: OrderBook, ev: RawEvent) -> str | None:
    """Apply the update `ev` to `book`; as `load_snapshot`."""
    bids, asks = ev.payload
    sides = book.bids
    if type(sides) is _STEP_SIDE:
        return kraken_step(sides, book.asks, bids, asks, False, book.depth_cap, ev.book_depth, ev.checksum)
    return python_apply_update(book, ev)


def python_load_snapshot(book: OrderBook, ev: RawEvent) -> str | None:
    """`load_snapshot` step by step in Python: the reference (and the path on pure-Python sides)."""
    bids, asks = ev.payload
    book.load(bids, asks)
    return _settle(book, ev)


def python_apply_update(book: OrderBook, ev: RawEvent) -> str | None:
    """`apply_update` step by step in Python: the reference (and the path on pure-Python sides)."""
    bids, asks = ev.payload
    book.apply(bids, asks)
    return _settle(book, ev)


def _settle(book: OrderBook, ev: RawEvent) -> str | None:
    """Kraken drops levels beyond the subscribed depth without sending deletes, then checksums the
    best 10 of each side (v1 snapshots carry no checksum); a crossed book is broken too."""
    depth = ev.book_depth
    if depth is not None:
        book.bids.truncate(depth, remember=False)
        book.asks.truncate(depth, remember=False)
    if ev.checksum is not None and ev.checksum != kraken_checksum(book):
        return CHECKSUM
    if book.crossed():
        return CROSSED
    return None


class KrakenChecksumBook:
    """One symbol's book on one connection. `on_event` returns why the book broke (`checksum`,
    `crossed`, `bad_event`: the reasons `BookTracker` gives its gap rows), or None."""

    __slots__ = ("book", "valid")

    def __init__(self) -> None:
        self.book = OrderBook()
        self.valid = False

    def on_event(self, ev: RawEvent) -> str | None:
        kind = ev.kind
        try:
            if kind is _SNAPSHOT:
                self.valid = True
                reason = load_snapshot(self.book, ev)
            elif kind is _DIFF and self.valid:
                reason = apply_update(self.book, ev)
            else:
                return None  # not a book message, or waiting for the resync snapshot
        except BAD_INPUT:
            reason = BAD_EVENT
        if reason is not None:
            self.valid = False
            self.book.clear()
        return reason
