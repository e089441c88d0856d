"""Bybit v5 public client: one connection to `/v5/public/spot` or `/v5/public/linear`.

Topics per symbol: `orderbook.{depth}.{S}`, `publicTrade.{S}`, `tickers.{S}` (linear: the funding
source) and `allLiquidation.{S}` (linear). Limits (exchange-protocols.md §3): at most 10 args per
subscribe request (spot rejects more), at most 21,000 characters of args per connection (the source
splits symbols across connections with `split_symbols`), `{"op":"ping"}` every 20 s. A delta whose `u`
is not the previous `u` + 1 (operators/sequencing/bybit.py) resyncs that book: unsubscribe + subscribe,
and Bybit answers with a fresh snapshot.
"""

from __future__ import annotations

import logging
import queue
import time

import orjson

from connectors.bybit.instruments import instruments_url, parse_instruments_page
from connectors.bybit.parsing import EXCHANGE, BybitParser
from connectors.instruments import Instrument
from connectors.parse_errors import ParseError
from connectors.venue_ws_client import VenueWsClient, chunk_by_budget, now_us
from cryptoflow.config import BybitConfig, ConnectorConfig
from cryptoflow.model import Kind, RawEvent
from operators.sequencing.bybit import delta_verdict
from operators.sequencing.verdict import Verdict

log = logging.getLogger(__name__)

CHANNEL_DEPTH = "depth"
CHANNEL_TRADES = "trades"
CHANNEL_FUNDING = "funding"  # linear tickers
CHANNEL_LIQUIDATIONS = "liquidations"  # linear allLiquidation
CATEGORIES = ("spot", "linear")


def topics_for(symbols: list[str], channels: set[str], category: str, depth: int) -> list[str]:
    out = []
    for s in symbols:
        if CHANNEL_DEPTH in channels:
            out.append(f"orderbook.{depth}.{s}")
        if CHANNEL_TRADES in channels:
            out.append(f"publicTrade.{s}")
        if category == "linear" and CHANNEL_FUNDING in channels:
            out.append(f"tickers.{s}")
        if category == "linear" and CHANNEL_LIQUIDATIONS in channels:
            out.append(f"allLiquidation.{s}")
    return out


def split_symbols(
    symbols: list[str], channels: set[str], category: str, depth: int, max_chars: int
) -> list[list[str]]:
    """Group symbols so each connection's args stay within `max_chars` characters in total."""
    groups: list[list[str]] = []
    current: list[str] = []
    chars = 0
    for s in symbols:
        need = sum(len(t) for t in topics_for([s], channels, category, depth))
        if current and chars + need > max_chars:
            groups.append(current)
            current, chars = [], 0
        current.append(s)
        chars += need
    if current:
        groups.append(current)
    return groups


class BybitClient(VenueWsClient):
    exchange = EXCHANGE
    connects_per_s = 500 / 300  # <= 500 new connections per 5 minutes per domain

    def __init__(
        self,
        cfg: BybitConfig,
        connector: ConnectorConfig,
        category: str,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue,
        local_addr: str | None = None,
    ) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"Bybit category must be spot or linear, not {category!r}")
        if not symbols:
            raise ValueError("a client needs at least one symbol")
        self.market_label = category
        super().__init__(
            connector, f"{cfg.ws_url}/v5/public/{category}", shard, out,
            ping_interval_s=cfg.ping_interval_s, pong_timeout_s=cfg.pong_timeout_s,
            resync_timeout_s=cfg.resync_timeout_s, http_timeout_s=cfg.http_timeout_s, local_addr=local_addr,
        )  # fmt: skip
        self.cfg, self.category, self.symbols, self.channels = cfg, category, symbols, channels
        self._topics = topics_for(symbols, channels, category, cfg.book_depth)
        chars = sum(len(t) for t in self._topics)
        if chars > cfg.max_args_chars_per_connection:
            raise ValueError(f"{chars} characters of args exceed {cfg.max_args_chars_per_connection} per "
                             "connection; split the symbols with split_symbols()")  # fmt: skip
        self.instruments: dict[str, Instrument] = {}
        self.instruments_at: float | None = None
        self.symbol_map: dict[str, str] = {}
        self.market_map: dict[str, str] = {}
        self.parser = BybitParser("spot" if category == "spot" else "perp", self.symbol_map, shard,
                                  self.market_map)  # fmt: skip
        self.last_u: dict[str, int | None] = {}
        self._req_id = 0

    # ------------------------------------------------------------------ instruments
    async def load_instruments(self) -> None:
        if not self.instruments_stale():
            return
        found: dict[str, Instrument] = {}
        cursor = None
        while True:
            response = await self.http(instruments_url(self.cfg.rest_url, self.category, cursor))
            try:
                page, cursor = parse_instruments_page(response.body, self.category)
            except ParseError as exc:
                raise ConnectionError(f"bybit instruments-info unusable: {exc}") from None
            found.update(page)
            if not cursor:
                break
        self.instruments, self.instruments_at = found, time.monotonic()
        missing = [s for s in self.symbols if s not in found]
        if missing:
            log.error("bybit %s: instruments-info does not list %s; their frames are dropped", self.category,
                      missing)  # fmt: skip
        self.symbol_map.clear()
        self.symbol_map.update({s: i.symbol for s, i in found.items() if s in self.symbols})
        self.market_map.clear()
        self.market_map.update({s: i.market for s, i in found.items() if s in self.symbols})

    def http_retry_s(self, status: int, retry_after_s: float | None, attempt: int) -> float:
        """Bybit `403 access too frequent`: stop HTTP traffic for at least 10 minutes."""
        if status == 403:
            return max(600.0, retry_after_s or 0.0)
        return super().http_retry_s(status, retry_after_s, attempt)

    def instruments_stale(self) -> bool:
        at = self.instruments_at
        return at is None or time.monotonic() - at >= self.cfg.instruments_refresh_s

    # ------------------------------------------------------------------ protocol
    def topics(self) -> list[str]:
        return self._topics

    def subscribe_requests(self, topics: list, op: str = "subscribe") -> list[str]:
        requests = []
        for group in chunk_by_budget(list(topics), self.cfg.max_args_per_subscribe):
            self._req_id += 1
            requests.append(orjson.dumps({"req_id": str(self._req_id), "op": op, "args": group}).decode())
        return requests

    def ping_frame(self) -> str:
        return '{"op":"ping"}'

    def parse(self, raw: str | bytes, ingest_us: int) -> list[RawEvent]:
        return self.parser.parse(raw, ingest_us)

    def book_topic(self, event: RawEvent) -> str:
        return f"orderbook.{self.cfg.book_depth}.{event.exchange_symbol}"

    def is_book_topic(self, topic) -> bool:
        return str(topic).startswith("orderbook.")

    def snapshot_topic(self, raw: str | bytes):
        text = raw if isinstance(raw, str) else raw.decode()
        if '"snapshot"' not in text or '"orderbook.' not in text:
            return None
        try:
            msg = orjson.loads(text)
            return msg["topic"] if msg.get("type") == "snapshot" else None
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    def gap(self, event: RawEvent) -> bool:
        if event.kind is Kind.DEPTH_SNAPSHOT:
            self.last_u[event.exchange_symbol] = event.seq
            return False
        verdict = delta_verdict(self.last_u.get(event.exchange_symbol), event.seq)
        if verdict is Verdict.APPLY:
            self.last_u[event.exchange_symbol] = event.seq
            return False
        if verdict is Verdict.GAP:
            self.last_u[event.exchange_symbol] = None  # nothing continues until the new snapshot
            return True
        return False

    def reset_books(self) -> list[RawEvent]:
        gaps = [
            RawEvent(EXCHANGE, self.market_map.get(s, self.parser.market), self.symbol_map.get(s, s), s,
                     Kind.CONNECTION_GAP, None, now_us(), self.shard, -1, None, seq=u)
            for s, u in self.last_u.items() if u is not None
        ]  # fmt: skip
        self.last_u.clear()
        self.pending_resync.clear()
        self.parser.tickers.clear()  # the new connection starts with ticker snapshots
        return gaps
