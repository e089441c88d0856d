"""Feeds connector events through the real delta operator and rebuilds every book from the rows it
emits, so tests can compare the books a collector would have written with the recording's truth, and
the `gaps` rows it would have written with the breaks the delivered stream really had."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from cryptoflow.model import GapRow, Kind, RawEvent
from operators.delta_sync import DeltaSyncLogic
from operators.sequencing.binance import spot_verdict
from tests.support.recording_truth import binance_true_book


class BookChecker:
    def __init__(self, id_stride: int) -> None:
        self.id_stride = id_stride
        self.logic: dict[str, DeltaSyncLogic] = {}
        self.books: dict[str, tuple[dict, dict]] = {}
        self.last_u: dict[str, int] = {}
        self.discontinuities_while_live: Counter = Counter()
        self.breaks: list[tuple[str, int, int]] = []  # (symbol, last id, id that broke it), found here
        self.gap_rows: list[GapRow] = []  # what the operator sends to the `gaps` table
        self.snapshots_checked = 0
        self.mismatches: list[str] = []
        self.events = 0

    def gaps(self) -> Counter:
        return Counter({s: lg.counters.gaps for s, lg in self.logic.items()})

    def live(self, symbol: str) -> bool:
        logic = self.logic.get(symbol)
        return logic is not None and logic.sync.live

    def book_id(self, symbol: str) -> int | None:
        logic = self.logic.get(symbol)
        return logic.sync.book_id if logic is not None else None

    def feed(self, event: RawEvent) -> None:
        if event.kind not in (Kind.DEPTH_DIFF, Kind.DEPTH_SNAPSHOT):
            return
        self.events += 1
        symbol = event.exchange_symbol
        logic = self.logic.setdefault(symbol, DeltaSyncLogic(spot_verdict, 10_000))
        if event.kind is Kind.DEPTH_DIFF:
            last = self.last_u.get(symbol)
            if last is not None and event.first_seq > last + 1 and logic.sync.live:
                self.discontinuities_while_live[symbol] += 1  # independent of the operator's verdict
                self.breaks.append((symbol, last, event.seq))
            self.last_u[symbol] = max(event.seq, last or 0)
        rows, _ = logic.on_item(event)
        for batch in rows:
            if isinstance(batch, GapRow):
                self.gap_rows.append(batch)
                continue
            if batch.is_snapshot:
                self.books[symbol] = ({}, {})
            bids, asks = self.books.setdefault(symbol, ({}, {}))
            for side, price, qty in zip(batch.sides, batch.prices, batch.qtys, strict=True):
                levels = bids if side == "bid" else asks
                if Decimal(qty) == 0:
                    levels.pop(Decimal(price), None)
                else:
                    levels[Decimal(price)] = Decimal(qty)
            if batch.is_snapshot:
                self.snapshots_checked += 1
                self.compare(symbol, batch.seq)

    def compare(self, symbol: str, book_id: int) -> bool:
        """The rebuilt book at a snapshot's id equals the truth at that id (ids shifted per loop pass)."""
        truth = binance_true_book(symbol, book_id % self.id_stride)
        ok = self.books[symbol] == truth
        if not ok:
            bids, asks = self.books[symbol]
            diff = sorted(set(bids.items()) ^ set(truth[0].items())) + sorted(
                set(asks.items()) ^ set(truth[1].items())
            )
            self.mismatches.append(f"{symbol} at {book_id}: {len(diff)} levels differ, e.g. {diff[:4]}")
        return ok

    def compare_live_books(self) -> dict[str, bool]:
        """Every live book, rebuilt from the emitted rows, equals the truth at its current id."""
        out = {}
        for symbol in self.logic:
            if self.live(symbol):
                bids, asks = self.books[symbol]
                truth = binance_true_book(symbol, self.book_id(symbol) % self.id_stride)
                out[symbol] = (bids, asks) == truth
        return out
