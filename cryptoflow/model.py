"""The records that flow between stages.

`RawEvent` is what a connector hands the dataflow (one exchange message about one instrument, already
parsed, stamped with ingest time and its (shard, offset) position). The row types are what operators
hand the sink. Level rows are kept column-wise per exchange message (`LevelBatch`) so that a 36-level
depth update is one Python object, not 36: Arrow takes the columns directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Kind(IntEnum):
    DEPTH_DIFF = 1
    DEPTH_SNAPSHOT = 2
    TRADE = 3
    BOOK_TICKER = 4
    # The connection this book is read from lost messages (Coinbase's per-connection `sequence_num`
    # jumped): the book is invalid until its next snapshot. `first_seq`/`seq` carry the missing range.
    CONNECTION_GAP = 5
    # A forced liquidation; payload `Liquidation`. `seq` is None (no venue numbers them).
    LIQUIDATION = 6
    # Funding / mark price state of a perpetual or future; payload `Funding`.
    FUNDING = 7


class Market:
    SPOT = "spot"
    PERP = "perp"
    FUTURE = "future"


LONG = "long"
SHORT = "short"
BID = "bid"
ASK = "ask"
BUY = "buy"
SELL = "sell"


def instrument_key(exchange: str, market: str, symbol: str) -> str:
    """Dataflow key `exchange|symbol`; non-spot markets are qualified so spot and perp never share a key."""
    if market == Market.SPOT:
        return f"{exchange}|{symbol}"
    return f"{exchange}|{symbol}-{market.upper()}"


@dataclass(slots=True)
class RawEvent:
    """One parsed exchange message about one instrument, in arrival order within its shard."""

    exchange: str
    market: str
    symbol: str  # normalized BASE-QUOTE
    exchange_symbol: str
    kind: Kind
    exchange_ts_us: int | None
    ingest_ts_us: int
    shard: int
    offset: int  # position in the shard's frame stream; monotonic, replayable
    payload: Any  # the message body as parsed JSON
    first_seq: int | None = None
    seq: int | None = None
    prev_seq: int | None = None
    checksum: int | None = None  # exchange book checksum after this message (OKX, Kraken), if sent
    book_depth: int | None = None  # subscribed depth the exchange truncates to (Kraken), if any

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.market, self.symbol)


@dataclass(frozen=True, slots=True)
class Liquidation:
    """`RawEvent.payload` of a `LIQUIDATION`. `side` is the side of the *liquidated position*
    (`long`/`short`), not of the liquidation order: Binance forceOrder `S=SELL` and Bybit
    allLiquidation `S=Buy` both mean a long was liquidated. Decimal strings as the exchange sent them."""

    side: str  # long | short
    price: str  # order / bankruptcy price
    qty: str  # quantity of the liquidation order
    avg_price: str | None = None  # average fill price, if the venue sends it
    filled_qty: str | None = None  # quantity filled so far, if the venue sends it
    status: str | None = None  # venue order status (Binance `X`), if sent


@dataclass(frozen=True, slots=True)
class Funding:
    """`RawEvent.payload` of a `FUNDING`: the venue's current funding and mark state (None = not sent)."""

    funding_rate: str | None
    next_funding_ts_us: int | None
    mark_price: str | None = None
    index_price: str | None = None
    estimated_settle_price: str | None = None


@dataclass(slots=True)
class LevelBatch:
    """The level changes of one exchange message (or one snapshot) for one book, column-wise."""

    exchange: str
    market: str
    symbol: str
    exchange_symbol: str
    exchange_ts_us: int | None
    ingest_ts_us: int
    seq: int | None
    first_seq: int | None
    prev_seq: int | None
    is_snapshot: bool
    shard: int
    offset: int
    sides: list[str]
    prices: list[str]  # exchange decimal text, exactly as received
    qtys: list[str]

    def __len__(self) -> int:
        return len(self.prices)


class DiffLevels:
    """The level rows of one applied depth diff, kept as the event itself: no per-frame copy, no
    per-level objects. The delta table's Arrow conversion reads the levels straight from the payload
    (bids first, then asks, each in message order); it reads like a `LevelBatch` with `is_snapshot`
    false (`sides`/`prices`/`qtys` are computed on access, for checks, not for the hot path)."""

    __slots__ = ("event",)
    is_snapshot = False

    def __init__(self, event: RawEvent) -> None:
        self.event = event

    def __getattr__(self, name: str) -> Any:  # header fields (exchange, seq, offset, ...) of the event
        if name == "event":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.event, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DiffLevels) and other.event == self.event

    def __repr__(self) -> str:
        return f"DiffLevels({self.event!r})"

    @property
    def sides(self) -> list[str]:
        bids, asks = self.event.payload
        return [BID] * len(bids) + [ASK] * len(asks)

    @property
    def prices(self) -> list[str]:
        bids, asks = self.event.payload
        return [lvl[0] for lvl in bids] + [lvl[0] for lvl in asks]

    @property
    def qtys(self) -> list[str]:
        bids, asks = self.event.payload
        return [lvl[1] for lvl in bids] + [lvl[1] for lvl in asks]

    def __len__(self) -> int:
        bids, asks = self.event.payload
        return len(bids) + len(asks)

    def __getstate__(self) -> RawEvent:
        return self.event

    def __setstate__(self, state: RawEvent) -> None:
        self.event = state


@dataclass(slots=True)
class TradeRow:
    exchange: str
    market: str
    symbol: str
    exchange_symbol: str
    exchange_ts_us: int | None
    ingest_ts_us: int
    trade_id: str
    price: str
    qty: str
    side: str  # taker side: buy | sell
    shard: int
    offset: int


@dataclass(slots=True)
class GapRow:
    """A break in a book's sequence: the book was consistent up to `seq_from`/`time_from` and the break
    was noticed at `seq_to`/`time_to` (ids are exchange ids, `None` where the venue has none)."""

    exchange: str
    market: str
    symbol: str
    exchange_symbol: str
    stream: str
    seq_from: int | None
    seq_to: int | None
    time_from_us: int | None
    time_to_us: int | None
    reason: str  # sequence | checksum | connection | snapshot_too_old | no_snapshot
    ingest_ts_us: int
    shard: int
    offset: int


@dataclass(slots=True)
class BookRow:
    """One order-book snapshot (top `snapshot_depth` levels) or full checkpoint (`is_checkpoint`)."""

    exchange: str
    market: str
    symbol: str
    exchange_symbol: str
    exchange_ts_us: int
    ingest_ts_us: int
    seq: int | None
    bids: list[tuple[str, str]]  # best first, exchange decimal text
    asks: list[tuple[str, str]]
    best_bid: str | None
    best_ask: str | None
    mid: str | None
    spread: str | None
    verified: bool  # an exchange cross-check matched since the last (re)sync and none failed
    is_checkpoint: bool
    shard: int
    offset: int


@dataclass(slots=True)
class LiquidationRow:
    exchange: str
    market: str
    symbol: str
    exchange_symbol: str
    exchange_ts_us: int | None
    ingest_ts_us: int
    side: str  # side of the liquidated position: long | short
    price: str
    qty: str
    avg_price: str | None
    filled_qty: str | None
    status: str | None
    shard: int
    offset: int


@dataclass(slots=True)
class FundingRow:
    exchange: str
    market: str
    symbol: str
    exchange_symbol: str
    exchange_ts_us: int | None
    ingest_ts_us: int
    funding_rate: str | None
    next_funding_ts_us: int | None
    mark_price: str | None
    index_price: str | None
    estimated_settle_price: str | None
    shard: int
    offset: int
