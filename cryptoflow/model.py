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


class Market:
    SPOT = "spot"
    PERP = "perp"
    FUTURE = "future"


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
