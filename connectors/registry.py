"""Which exchange feeds which stream: one entry per (stream, exchange) with the source factory and, for
book streams, the book engine's sequencing scheme. Dataflows iterate over `sources(settings, stream)`
and wire one input per exchange, so adding a venue to a stream is one `register` call here.

(Adapter written by the Coinbase/Kraken branch while main had no registry: if the dataflows branch lands
its own, these entries move there unchanged.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connectors.binance.source import binance_spot_source
from connectors.binance.spot_client import CHANNEL_BOOK_TICKER, CHANNEL_DEPTH, CHANNEL_TRADES
from connectors.coinbase.client import CHANNEL_LEVEL2
from connectors.coinbase.client import CHANNEL_TRADES as COINBASE_TRADES
from connectors.coinbase.source import coinbase_source
from connectors.kraken.client import CHANNEL_BOOK, CHANNEL_TRADE
from connectors.kraken.source import kraken_source
from connectors.source import ShardedSource
from cryptoflow.config import Settings
from operators.book import tracker

SourceFactory = Callable[[Settings, str], ShardedSource]


@dataclass(frozen=True)
class Entry:
    exchange: str
    build: SourceFactory  # (settings, stream) -> source
    symbols: Callable[[Settings], list[str]]  # the configured symbols (none -> not wired)
    enabled: Callable[[Settings], bool]
    scheme: str | None = None  # book streams: operators.book.tracker scheme


REGISTRY: dict[str, list[Entry]] = {}


def register(stream: str, entry: Entry) -> None:
    REGISTRY.setdefault(stream, []).append(entry)


def sources(settings: Settings, stream: str) -> list[tuple[Entry, ShardedSource]]:
    """The stream's sources for every exchange that is enabled and has symbols configured."""
    return [
        (e, e.build(settings, stream))
        for e in REGISTRY.get(stream, [])
        if e.enabled(settings) and e.symbols(settings)
    ]


def _binance(s: Settings):
    return s.exchanges.binance.spot


def _coinbase(s: Settings):
    return s.exchanges.coinbase


def _kraken(s: Settings):
    return s.exchanges.kraken


def _entry(
    exchange: str, cfg: Callable, channels: set[str], factory: Callable, scheme: str | None = None
) -> Entry:
    return Entry(
        exchange,
        lambda settings, stream: factory(settings, channels, stream),
        lambda settings: cfg(settings).symbols,
        lambda settings: cfg(settings).enabled,
        scheme,
    )


register("ticks", _entry("binance", _binance, {CHANNEL_TRADES}, binance_spot_source))
register("ticks", _entry("coinbase", _coinbase, {COINBASE_TRADES}, coinbase_source))
register("ticks", _entry("kraken", _kraken, {CHANNEL_TRADE}, kraken_source))
register("spot_ob", _entry("binance", _binance, {CHANNEL_DEPTH, CHANNEL_BOOK_TICKER}, binance_spot_source,
                           tracker.BINANCE_SPOT))  # fmt: skip
register("spot_ob", _entry("coinbase", _coinbase, {CHANNEL_LEVEL2}, coinbase_source, tracker.COINBASE))
register("spot_ob", _entry("kraken", _kraken, {CHANNEL_BOOK}, kraken_source, tracker.KRAKEN))
