"""Kraken spot WebSocket v2 client for one shard (exchange-protocols.md §6).

* `wss://ws.kraken.com/v2`; `book` at the configured depth with `snapshot: true`, `trade`.
* No sequence numbers: the CRC32 checksum on every book message is the only gap signal. The client keeps
  a checksum-only copy of each book (`operators.book.checksum_book.KrakenChecksumBook`: it breaks where
  the dataflow's `BookTracker` breaks, at a fraction of its cost); a mismatch makes it unsubscribe +
  subscribe that symbol's book (a fresh snapshot). The parser keeps prices/quantities as their literal
  text, which the checksum needs.
* `{"method":"ping"}` every `ping_interval_s` (idle connections are closed after ~1 minute); the
  `status` and `heartbeat` channels count as traffic for the idle watchdog.
* A connection that gets neither a book snapshot of every pair nor (trades only) a subscribe ack within
  `subscribe_timeout_s` is closed and retried with back-off (`reconnects_total{reason=subscribe_timeout}`):
  the pongs would otherwise keep the idle watchdog quiet forever.
* ≈150 connects per rolling 10 minutes per IP (Cloudflare bans for 10 minutes beyond): a process-wide
  per-IP budget.
* Pairs from REST `/0/public/AssetPairs` (v2 names: BTC, not XBT), cached and refreshed.
"""

from __future__ import annotations

import itertools
import logging
import queue
from collections.abc import Callable

import orjson

from connectors.egress import EgressManager
from connectors.journal import JournalWriter
from connectors.kraken.instruments import parse_asset_pairs
from connectors.kraken.parsing import EXCHANGE, KrakenV2Parser
from connectors.subscribe_client import InstrumentMap, SubscribeClient
from cryptoflow.config import ConnectorConfig, KrakenConfig
from cryptoflow.model import Market, RawEvent
from operators.book.checksum_book import KrakenChecksumBook

log = logging.getLogger(__name__)

CHANNEL_BOOK = "book"
CHANNEL_TRADE = "trade"
ASSET_PAIRS_PATH = "/0/public/AssetPairs"
MESSAGES_PER_S = 5.0  # Kraken publishes no inbound limit; stay polite


class KrakenClient(SubscribeClient):
    exchange = EXCHANGE

    def __init__(
        self,
        cfg: KrakenConfig,
        connector: ConnectorConfig,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue | JournalWriter,
        local_addr: str | None = None,
        egress: EgressManager | None = None,
    ) -> None:
        super().__init__(connector, symbols, channels, shard, out, local_addr=local_addr, egress=egress)
        self.connect_limit = (cfg.connects_per_10min, 600.0)
        self.idle_timeout_s, self.messages_per_s = cfg.idle_timeout_s, MESSAGES_PER_S
        self.cfg = cfg
        self.keepalive_s = cfg.ping_interval_s
        self.subscribe_timeout_s = cfg.subscribe_timeout_s
        self.instruments: dict[str, str] = {}  # v2 symbol -> BASE-QUOTE
        self._instruments_at = 0.0
        self._req_ids = itertools.count(1)
        self.system_status = "unknown"  # from the `status` channel
        self.checksum_books: dict[str, KrakenChecksumBook] = {}  # v2 symbol -> this connection's copy

    def url(self) -> str:
        return self.cfg.ws_url

    def new_parser(self) -> KrakenV2Parser:
        return KrakenV2Parser(self.cfg.book_depth, self.shard)

    async def prepare(self) -> None:
        await self._load_instruments(
            f"{self.cfg.rest_url}{ASSET_PAIRS_PATH}", parse_asset_pairs, "kraken AssetPairs",
            self.cfg.instruments_refresh_s, self.cfg.http_timeout_s,
        )  # fmt: skip

    def instrument_map(self) -> InstrumentMap:
        return {s: (Market.SPOT, self.instruments[s]) for s in self.symbols if s in self.instruments}

    def _request(self, method: str, params: dict) -> str:
        return orjson.dumps({"method": method, "params": params, "req_id": next(self._req_ids)}).decode()

    def _book_params(self, symbols: list[str]) -> dict:
        return {"channel": CHANNEL_BOOK, "symbol": symbols, "depth": self.cfg.book_depth, "snapshot": True}

    def subscribe_messages(self) -> list[str]:
        out = []
        if CHANNEL_BOOK in self.channels:
            out.append(self._request("subscribe", self._book_params(self.symbols)))
        if CHANNEL_TRADE in self.channels:
            out.append(
                self._request(
                    "subscribe", {"channel": CHANNEL_TRADE, "symbol": self.symbols, "snapshot": False}
                )
            )
        return out

    def resubscribe_messages(self, symbols: list[str]) -> list[str]:
        unsubscribe = {"channel": CHANNEL_BOOK, "symbol": symbols, "depth": self.cfg.book_depth}
        return [
            self._request("unsubscribe", unsubscribe),
            self._request("subscribe", self._book_params(symbols)),
        ]

    def confirm_books(self) -> set[str]:
        """Every known pair's book snapshot shows a book subscription works (unknown pairs are refused)."""
        if CHANNEL_BOOK not in self.channels:
            return set()
        return {s for s in self.symbols if s in self.instruments}

    def subscribe_acked(self, raw: str | bytes) -> bool:
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        return text.startswith('{"method":"subscribe"') and '"success":true' in text

    def keepalive_message(self) -> str:
        return orjson.dumps({"method": "ping", "req_id": next(self._req_ids)}).decode()

    def _frame(self, raw: str | bytes, ingest: int) -> None:
        """The `status` channel says whether the exchange is `online`; anything else (maintenance,
        cancel_only, post_only) is logged, since books may stall or the connection may be dropped."""
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        if text.startswith('{"channel":"status"'):
            try:
                system = orjson.loads(text)["data"][0]["system"]
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                system = "unknown"
            if system != self.system_status:
                level = logging.INFO if system == "online" else logging.WARNING
                log.log(level, "%s: Kraken system status %s", self._label, system)
            self.system_status = system
        super()._frame(raw, ingest)

    def sequence(self, event: RawEvent) -> None:
        """A book event: resubscribe the symbol when its checksum (or shape) says a message was lost."""
        book = self.checksum_books.get(event.exchange_symbol)
        if book is None:
            book = self.checksum_books[event.exchange_symbol] = KrakenChecksumBook()
        reason = book.on_event(event)
        if reason is not None:
            self.request_resync(event.exchange_symbol, reason)

    def reset_sequencing(self) -> None:
        """A new connection or a hand-over: every book starts again from its snapshot."""
        self.checksum_books = {}

    def map_event(self, event: RawEvent) -> RawEvent | None:
        symbol = self.instruments.get(event.exchange_symbol)
        if symbol is None:
            return None
        event.symbol = symbol
        return event


def kraken_parser(cfg: KrakenConfig, shard: int) -> Callable[[str, InstrumentMap], KrakenV2Parser]:
    """The decoder's parser factory (`connectors.subscribe_client.SubscribeDecoder`)."""
    return lambda key, instruments: KrakenV2Parser(cfg.book_depth, shard)
