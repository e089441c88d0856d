"""Coinbase Advanced Trade market-data client for one shard (exchange-protocols.md §5).

* `wss://advanced-trade-ws.coinbase.com`; one subscribe message per channel (`level2`, `market_trades`,
  `heartbeats`) sent right after connecting (the server closes a socket without one within 5 s).
* `sequence_num` is per connection and shared by every channel: the connection's `CoinbaseParser`
  checks it; a jump yields a `CONNECTION_GAP` per product, the engine marks those books broken, and this
  client resubscribes `level2` for them (unsubscribe + subscribe = a fresh full-book snapshot).
* Per-IP budgets shared by all shards: 8 connects/s and 8 messages/s.
* Max message size 64 MB (the level2 snapshot is the entire book, ≈8 MB for BTC-USD).
* Heartbeats every second keep channels open; no frame for `idle_timeout_s` means a dead socket: reconnect.
* Products (and their `BASE-QUOTE` symbols) from `GET /api/v3/brokerage/market/products`, cached and
  refreshed every `instruments_refresh_s` (before a reconnect).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable

import orjson

from connectors.coinbase.instruments import parse_products
from connectors.coinbase.parsing import EXCHANGE, CoinbaseParser
from connectors.egress import EgressManager
from connectors.journal import JournalWriter
from connectors.subscribe_client import InstrumentMap, SubscribeClient
from cryptoflow.config import CoinbaseConfig, ConnectorConfig
from cryptoflow.model import Kind, Market, RawEvent

log = logging.getLogger(__name__)

CHANNEL_LEVEL2 = "level2"
CHANNEL_TRADES = "market_trades"
CHANNEL_HEARTBEATS = "heartbeats"  # always subscribed: without it idle channels are closed
PRODUCTS_PATH = "/api/v3/brokerage/market/products"


class CoinbaseClient(SubscribeClient):
    """The only book break Coinbase can show is the connection's `CONNECTION_GAP` (no checksum exists),
    so the client resubscribes on that event directly instead of mirroring 46,000-level books."""

    exchange = EXCHANGE

    def __init__(
        self,
        cfg: CoinbaseConfig,
        connector: ConnectorConfig,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue | JournalWriter,
        local_addr: str | None = None,
        egress: EgressManager | None = None,
    ) -> None:
        super().__init__(connector, symbols, channels, shard, out, local_addr=local_addr, egress=egress)
        self.cfg = cfg
        self.connect_limit = (max(1, int(cfg.connects_per_s)), 1.0)
        self.message_limit = (max(1, int(cfg.messages_per_s)), 1.0)
        self.idle_timeout_s, self.messages_per_s = cfg.idle_timeout_s, cfg.messages_per_s
        self.instruments: dict[str, str] = {}  # product_id -> BASE-QUOTE
        self._instruments_at = 0.0

    def url(self) -> str:
        return self.cfg.ws_url

    def new_parser(self) -> CoinbaseParser:
        return CoinbaseParser(self.shard)

    async def prepare(self) -> None:
        await self._load_instruments(
            f"{self.cfg.rest_url}{PRODUCTS_PATH}", parse_products, "coinbase products endpoint",
            self.cfg.instruments_refresh_s, self.cfg.http_timeout_s,
        )  # fmt: skip

    def instrument_map(self) -> InstrumentMap:
        return {s: (Market.SPOT, self.instruments[s]) for s in self.symbols if s in self.instruments}

    def _message(self, kind: str, channel: str, products: list[str]) -> str:
        return orjson.dumps({"type": kind, "product_ids": products, "channel": channel}).decode()

    def subscribe_messages(self) -> list[str]:
        wanted = [c for c in (CHANNEL_LEVEL2, CHANNEL_TRADES) if c in self.channels] + [CHANNEL_HEARTBEATS]
        return [self._message("subscribe", channel, self.symbols) for channel in wanted]

    def resubscribe_messages(self, symbols: list[str]) -> list[str]:
        return [
            self._message("unsubscribe", CHANNEL_LEVEL2, symbols),
            self._message("subscribe", CHANNEL_LEVEL2, symbols),
        ]

    def map_event(self, event: RawEvent) -> RawEvent | None:
        symbol = self.instruments.get(event.exchange_symbol)
        if symbol is None:
            return None
        event.symbol = symbol
        if event.kind is Kind.CONNECTION_GAP and CHANNEL_LEVEL2 in self.channels:
            log.warning(
                "coinbase %s: sequence_num skipped %s..%s", event.exchange_symbol, event.first_seq, event.seq
            )
            self.request_resync(event.exchange_symbol, "connection")
        return event


def coinbase_parser(shard: int) -> Callable[[str, InstrumentMap], CoinbaseParser]:
    """The decoder's parser factory (`connectors.subscribe_client.SubscribeDecoder`)."""
    return lambda key, instruments: CoinbaseParser(shard)
