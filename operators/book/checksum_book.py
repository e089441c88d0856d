"""A Kraken book kept by the connector only to check the venue's checksum after every message.

Why: Kraken has no sequence numbers; a lost message shows only as a checksum mismatch, and only the
client can resubscribe (a fresh snapshot). The client used to run the dataflow's whole `BookTracker` for
this, so every book message was tracked twice; this is the part the client needs and nothing else: two
compiled sides (operators/book/_levels.c), the snapshot/update rules, the CRC32 and the crossed-book
check. No rows, counters, gap rows or `Step` objects. It must break exactly where `BookTracker` (scheme
`kraken`) breaks, so the client asks for a resync whenever the dataflow writes a gap row for that reason.
"""

from __future__ import annotations

from cryptoflow.model import Kind, RawEvent
from operators.book.checksums import kraken_checksum
from operators.book.levels import OrderBook

_BAD_EVENT = (ValueError, TypeError, IndexError, KeyError, AttributeError, ArithmeticError)


class KrakenChecksumBook:
    """One symbol's book on one connection. `on_event` returns why the book broke (`checksum`,
    `crossed`, `bad_event`: the reasons `BookTracker` gives its gap rows), or None."""

    __slots__ = ("book", "valid")

    def __init__(self) -> None:
        self.book = OrderBook()
        self.valid = False

    def on_event(self, ev: RawEvent) -> str | None:
        kind = ev.kind
        if kind is not Kind.DEPTH_SNAPSHOT and (kind is not Kind.DEPTH_DIFF or not self.valid):
            return None  # not a book message, or waiting for the resync snapshot
        try:
            bids, asks = ev.payload
            book, depth = self.book, ev.book_depth
            if kind is Kind.DEPTH_SNAPSHOT:
                book.load(bids, asks)
                self.valid = True
            else:
                book.apply(bids, asks)
            if depth is not None:  # Kraken truncates to the subscribed depth without sending deletes
                book.bids.truncate(depth, remember=False)
                book.asks.truncate(depth, remember=False)
            if ev.checksum is not None and ev.checksum != kraken_checksum(book):
                return self._broken("checksum")
            if book.crossed():
                return self._broken("crossed")
        except _BAD_EVENT:
            return self._broken("bad_event")
        return None

    def _broken(self, reason: str) -> str:
        self.valid = False
        self.book.clear()
        return reason
