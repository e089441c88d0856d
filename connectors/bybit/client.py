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
from collections.abc import Callable, Iterator, Mapping

import orjson

from connectors.bybit.instruments import instruments_url, parse_instruments_page
from connectors.bybit.parsing import EXCHANGE, BybitParser
from connectors.egress import EgressManager
from connectors.instruments import Instrument
from connectors.journal import JournalWriter
from connectors.parse_errors import ParseError
from connectors.subscribe_client import InstrumentMap, SubscribeClient
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


def chunk_by_budget(items: list[str], max_items: int, max_chars: int | None = None) -> list[list[str]]:
    """Split `items` into consecutive groups of at most `max_items` and at most `max_chars` in total."""
    groups: list[list[str]] = []
    current: list[str] = []
    chars = 0
    for item in items:
        if current and (
            len(current) >= max_items or (max_chars is not None and chars + len(item) > max_chars)
        ):
            groups.append(current)
            current, chars = [], 0
        current.append(item)
        chars += len(item)
    if current:
        groups.append(current)
    return groups


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


class BybitClient(SubscribeClient):
    exchange = EXCHANGE
    connect_limit = (500, 300.0)  # <= 500 new connections per 5 minutes per IP
    messages_per_s = 1000.0  # the subscribe requests go out in one burst (no per-socket message limit)

    def __init__(
        self,
        cfg: BybitConfig,
        connector: ConnectorConfig,
        category: str,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue | JournalWriter,
        local_addr: str | None = None,
        egress: EgressManager | None = None,
    ) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"Bybit category must be spot or linear, not {category!r}")
        self.market = self.journal_key = category  # before the base binds the frames metric to it
        super().__init__(connector, symbols, channels, shard, out, local_addr=local_addr, egress=egress)
        self.cfg, self.category = cfg, category
        self.keepalive_s, self.pong_timeout_s = cfg.ping_interval_s, cfg.pong_timeout_s
        self.resync_timeout_s = cfg.resync_timeout_s
        self._topics = topics_for(symbols, channels, category, cfg.book_depth)
        chars = sum(len(t) for t in self._topics)
        if chars > cfg.max_args_chars_per_connection:
            raise ValueError(f"{chars} characters of args exceed {cfg.max_args_chars_per_connection} per "
                             "connection; split the symbols with split_symbols()")  # fmt: skip
        self.instruments: dict[str, Instrument] = {}
        self.instruments_at: float | None = None
        self.symbol_map: dict[str, str] = {}
        self.market_map: dict[str, str] = {}
        self.last_u: dict[str, int | None] = {}
        self._req_id = 0

    # ------------------------------------------------------------------ instruments
    async def prepare(self) -> None:
        if not self.instruments_stale():
            return
        found: dict[str, Instrument] = {}
        cursor = None
        while True:
            url = instruments_url(self.cfg.rest_url, self.category, cursor)
            body = await self._rest(url, "bybit instruments-info", self.cfg.http_timeout_s)
            try:
                page, cursor = parse_instruments_page(body, self.category)
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

    def _rest_wait(self, status: int, retry_after_s: float | None) -> float:
        """Bybit `403 access too frequent`: stop HTTP traffic for at least 10 minutes."""
        return max(600.0, retry_after_s or 0.0) if status == 403 else 0.0

    def instruments_stale(self) -> bool:
        at = self.instruments_at
        return at is None or time.monotonic() - at >= self.cfg.instruments_refresh_s

    def instrument_map(self) -> InstrumentMap:
        return {s: (self.market_map[s], self.symbol_map[s]) for s in self.symbol_map}

    # ------------------------------------------------------------------ protocol
    def url(self) -> str:
        return f"{self.cfg.ws_url}/v5/public/{self.category}"

    def new_parser(self) -> BybitParser:
        """A fresh parser per connection: the new connection starts with ticker snapshots."""
        return bybit_parser(self.category, self.symbol_map, self.shard, self.market_map)

    def topics(self) -> list[str]:
        return self._topics

    def subscribe_requests(self, topics: list, op: str = "subscribe") -> list[str]:
        requests = []
        for group in chunk_by_budget(list(topics), self.cfg.max_args_per_subscribe):
            self._req_id += 1
            requests.append(orjson.dumps({"req_id": str(self._req_id), "op": op, "args": group}).decode())
        return requests

    def subscribe_messages(self) -> list[str]:
        return self.subscribe_requests(self._topics)

    def resubscribe_messages(self, symbols: list[str]) -> list[str]:
        topics = [self.book_topic(s) for s in symbols]
        return self.subscribe_requests(topics, "unsubscribe") + self.subscribe_requests(topics)

    def keepalive_message(self) -> str:
        return '{"op":"ping"}'

    def book_topic(self, exchange_symbol: str) -> str:
        return f"orderbook.{self.cfg.book_depth}.{exchange_symbol}"

    def handover_books(self) -> set:
        return {t for t in self._topics if t.startswith("orderbook.")}

    def snapshot_topic(self, raw: str | bytes):
        text = raw if isinstance(raw, str) else raw.decode()
        if '"snapshot"' not in text or '"orderbook.' not in text:
            return None
        try:
            msg = orjson.loads(text)
            return msg["topic"] if msg.get("type") == "snapshot" else None
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    def sequence(self, event: RawEvent) -> None:
        """`u` must be the previous `u` + 1 (operators/sequencing/bybit.py); else resync the book."""
        if event.kind is Kind.DEPTH_SNAPSHOT:
            self.last_u[event.exchange_symbol] = event.seq
            return
        verdict = delta_verdict(self.last_u.get(event.exchange_symbol), event.seq)
        if verdict is Verdict.APPLY:
            self.last_u[event.exchange_symbol] = event.seq
        elif verdict is Verdict.GAP:
            self.last_u[event.exchange_symbol] = None  # nothing continues until the new snapshot
            self.request_resync(event.exchange_symbol, "gap")

    def reset_sequencing(self) -> None:
        self.last_u.clear()

    def lost_seq(self, exchange_symbol: str) -> int | None:
        return self.last_u.get(exchange_symbol)


class _Column(Mapping):
    """One field of the decoder's instrument map as the dict the parser expects (kept live)."""

    def __init__(self, instruments: InstrumentMap, index: int) -> None:
        self.instruments, self.index = instruments, index

    def __getitem__(self, key: str) -> str:
        return self.instruments[key][self.index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.instruments)

    def __len__(self) -> int:
        return len(self.instruments)

    def __bool__(self) -> bool:  # an empty map is still the live one (the parser keeps it)
        return True


def bybit_parser(category: str, symbols: Mapping, shard: int, markets: Mapping) -> BybitParser:
    return BybitParser("spot" if category == "spot" else "perp", symbols, shard, markets)  # type: ignore[arg-type]


def bybit_decoder_parser(shard: int) -> Callable[[str, InstrumentMap], BybitParser]:
    """The decoder's parser factory: the journal key is the category."""
    return lambda key, instruments: bybit_parser(key, _Column(instruments, 1), shard, _Column(instruments, 0))
