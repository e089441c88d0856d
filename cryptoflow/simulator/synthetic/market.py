"""The synthetic market: a true order book per symbol that moves by a seeded random walk, plus trades,
liquidations and funding updates. It knows nothing about protocols (see `encoders.py`).

Why: no recording covers liquidations, funding, Kraken v2 books or OKX books with `seqId`, and load tests
need any number of symbols at any rate. The true book is an `operators.book.levels.OrderBook` holding the
exact text the encoders send, so the checksums of `operators.book.checksums` can be computed on it and
tests can compare a connector's book with the truth level by level.

Prices live on an integer tick grid around a per-symbol mid tick: bids at ticks below the mid, asks above,
so the book never crosses. Texts are fixed-point with trailing zeros kept (`"100.10"`, `"0.50000000"`),
which is what makes Kraken's text checksum fragile, on purpose.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from operators.book.levels import OrderBook

UNBOUNDED = 1 << 30


@dataclass(slots=True)
class BookChange:
    """One exchange message worth of absolute level changes for one symbol (qty text zero = delete)."""

    symbol: str
    ts_us: int
    bids: list[list[str]]
    asks: list[list[str]]


@dataclass(slots=True)
class Trade:
    symbol: str
    trade_id: int
    price: str
    qty: str
    taker_side: str  # buy | sell
    ts_us: int


@dataclass(slots=True)
class Liquidation:
    symbol: str
    position_side: str  # side of the liquidated position: long | short
    price: str
    qty: str
    ts_us: int


@dataclass(slots=True)
class Funding:
    symbol: str
    rate: str
    mark_price: str
    next_funding_us: int
    ts_us: int


@dataclass
class Truth:
    """What the market emitted, for tests: the liquidations and funding updates in order."""

    liquidations: list[Liquidation] = field(default_factory=list)
    funding: list[Funding] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    initial: dict[str, tuple[list[list[str]], list[list[str]]]] = field(default_factory=dict)
    changes: list[BookChange] = field(default_factory=list)


class SyntheticMarket:
    """`symbols` x `depth` levels per side, seeded. `step_us` of exchange time passes per message, or with
    `wall_clock` exchange time is the real time the message is made (latency benchmarks measure
    exchange time -> ingest against it)."""

    def __init__(
        self,
        symbols: list[str],
        depth: int = 50,
        seed: int = 0,
        price_decimals: int = 2,
        qty_decimals: int = 8,
        start_us: int = 1_785_000_000_000_000,
        step_us: int = 1_000,
        keep_truth: bool = True,
        wall_clock: bool = False,
    ) -> None:
        if depth < 2:
            raise ValueError("depth must be at least 2")
        self.symbols, self.depth = list(symbols), depth
        self.rng = random.Random(seed)
        self.pd, self.qd = price_decimals, qty_decimals
        self.pscale, self.qscale = 10**price_decimals, 10**qty_decimals
        self.wall_clock = wall_clock
        self.now_us, self.step_us = (time.time_ns() // 1000 if wall_clock else start_us), step_us
        self.keep_truth = keep_truth
        self.truth = Truth()
        self.books: dict[str, OrderBook] = {}
        self.mid: dict[str, int] = {}
        self.trade_ids: dict[str, int] = {}
        self._zero_qty = self.qty_text(0)
        self._rr = 0
        for i, symbol in enumerate(self.symbols):
            self.mid[symbol] = (100 + 7 * i) * self.pscale
            self.trade_ids[symbol] = 1000
            book = OrderBook(depth_cap=UNBOUNDED)
            m = self.mid[symbol]
            book.load(
                [[self.price_text(m - k), self._random_qty()] for k in range(1, depth + 1)],
                [[self.price_text(m + k), self._random_qty()] for k in range(1, depth + 1)],
            )
            self.books[symbol] = book
            if keep_truth:
                self.truth.initial[symbol] = self.snapshot(symbol)

    # ------------------------------------------------------------------ text
    def price_text(self, tick: int) -> str:
        if self.pd == 0:
            return str(tick)
        return f"{tick // self.pscale}.{tick % self.pscale:0{self.pd}d}"

    def qty_text(self, units: int) -> str:
        if self.qd == 0:
            return str(units)
        return f"{units // self.qscale}.{units % self.qscale:0{self.qd}d}"

    def _random_qty(self) -> str:
        return self.qty_text(self.rng.randint(1, 5 * self.qscale))

    # ------------------------------------------------------------------ book
    def snapshot(self, symbol: str, limit: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
        """The true book, best first (`limit` levels per side)."""
        book = self.books[symbol]
        n = limit or UNBOUNDED
        return [list(lv) for lv in book.bids.top(n)], [list(lv) for lv in book.asks.top(n)]

    def next_symbol(self) -> str:
        symbol = self.symbols[self._rr % len(self.symbols)]
        self._rr += 1
        return symbol

    def tick(self) -> int:
        if self.wall_clock:  # strictly increasing, like an exchange's stamps
            self.now_us = max(self.now_us + 1, time.time_ns() // 1000)
            return self.now_us
        self.now_us += self.step_us
        return self.now_us

    def next_change(self, symbol: str | None = None) -> BookChange:
        """Mutate one symbol's true book and return the change: a mid move (with the level it crosses
        removed) now and then, otherwise 1-3 inserts/replaces/deletes within the top `depth` ticks."""
        symbol = symbol or self.next_symbol()
        book, rng = self.books[symbol], self.rng
        m = self.mid[symbol]
        bids: list[list[str]] = []
        asks: list[list[str]] = []
        if rng.random() < 0.05:
            if rng.random() < 0.5:
                self.mid[symbol] = m = m + 1
                crossing = self.price_text(m)
                if crossing in book.asks:
                    asks.append([crossing, self._zero_qty])
            else:
                self.mid[symbol] = m = m - 1
                crossing = self.price_text(m)
                if crossing in book.bids:
                    bids.append([crossing, self._zero_qty])
        for _ in range(rng.randint(1, 3)):
            bid = rng.random() < 0.5
            k = rng.randint(1, self.depth)
            price = self.price_text(m - k if bid else m + k)
            present = price in (book.bids if bid else book.asks)
            qty = self._zero_qty if present and rng.random() < 0.25 else self._random_qty()
            (bids if bid else asks).append([price, qty])
        book.apply(bids, asks)
        change = BookChange(symbol, self.tick(), bids, asks)
        if self.keep_truth:
            self.truth.changes.append(change)
        return change

    def book_at(self, symbol: str, ts_us: int) -> OrderBook:
        """The true book of `symbol` after every change with exchange time <= `ts_us` (needs keep_truth)."""
        book = OrderBook(depth_cap=UNBOUNDED)
        book.load(*self.truth.initial[symbol])
        for ch in self.truth.changes:
            if ch.ts_us > ts_us:
                break
            if ch.symbol == symbol:
                book.apply(ch.bids, ch.asks)
        return book

    # ------------------------------------------------------------------ other streams
    def next_trade(self, symbol: str | None = None) -> Trade:
        symbol = symbol or self.next_symbol()
        book = self.books[symbol]
        buy = self.rng.random() < 0.5
        level = book.best_ask() if buy else book.best_bid()
        price = level[0] if level else self.price_text(self.mid[symbol])
        self.trade_ids[symbol] += 1
        trade = Trade(symbol, self.trade_ids[symbol], price, self._random_qty(), "buy" if buy else "sell",
                      self.tick())  # fmt: skip
        if self.keep_truth:
            self.truth.trades.append(trade)
        return trade

    def next_liquidation(self, symbol: str | None = None) -> Liquidation:
        symbol = symbol or self.next_symbol()
        long = self.rng.random() < 0.5
        liq = Liquidation(symbol, "long" if long else "short", self.price_text(self.mid[symbol]),
                          self._random_qty(), self.tick())  # fmt: skip
        if self.keep_truth:
            self.truth.liquidations.append(liq)
        return liq

    def next_funding(self, symbol: str | None = None) -> Funding:
        symbol = symbol or self.next_symbol()
        rate = f"{self.rng.randint(-750, 750) / 1e6:.8f}"
        now = self.tick()
        next_funding = (now // 28_800_000_000 + 1) * 28_800_000_000
        funding = Funding(symbol, rate, self.price_text(self.mid[symbol]), next_funding, now)
        if self.keep_truth:
            self.truth.funding.append(funding)
        return funding
