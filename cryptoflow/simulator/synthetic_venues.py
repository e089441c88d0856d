"""Bybit v5 and OKX v5 from the synthetic market, served over real sockets: what no recording has
(liquidations, funding, OKX books with `seqId` and a real checksum) for any number of symbols at any rate.

The protocol is the replay venues' own (`BybitVenue` / `OkxVenue`: subscribe/unsubscribe acks, pings,
request limits, instrument REST endpoints), only the frames come from a `SyntheticFeed` instead of a
recording, as `KrakenV2SyntheticVenue` does for Kraken v2. One feed per URL path (Bybit: one market per
category, `/v5/public/spot` and `/v5/public/linear`; OKX: one market on `/ws/v5/public` whose symbols are
the instrument ids) starts with the first connection and is shared by every connection, like an
exchange: each event is encoded once (continuity ids are exchange-wide, so a snapshot cut for a
resubscribing connection carries the current `u` / `seqId` and nobody else's chain breaks) and queued
for every connection subscribed to its topic; a book topic subscribed at any time gets a snapshot of the
true book at once. When the feed is done every connection is closed with 4100 (end of replay).

Topics: Bybit `orderbook.{depth}.{S}` (the whole book: subscribe a depth above the market's level
count, e.g. the client's default 200), `publicTrade.{S}`, linear `tickers.{S}` (funding) and
`allLiquidation.{S}` (`S` = the liquidated position's side, "Buy" = long); OKX `books` (400-level
snapshot, `prevSeqId`/`seqId` chain, checksum of the true book or 0), `trades`, `funding-rate` (SWAP),
`liquidation-orders` per `instType` (SWAP / FUTURES; `posSide` long/short, every `net_mode_every`-th one
in net mode where only the closing order's `side` tells: sell = a long was liquidated). The markets'
`truth` is what was emitted, for tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from cryptoflow.simulator.batching import send_many
from cryptoflow.simulator.bybit import BybitVenue, instruments_body
from cryptoflow.simulator.okx import WS_PATH, OkxVenue
from cryptoflow.simulator.subscribe_replay import Connection
from cryptoflow.simulator.synthetic.encoders import BybitEncoder, OkxEncoder, concat, okx_inst_type
from cryptoflow.simulator.synthetic.feed import Event, FeedPlan, SyntheticFeed
from cryptoflow.simulator.synthetic.market import BookChange, Funding, Liquidation, SyntheticMarket, Trade

BYBIT_PATHS = {"spot": "/v5/public/spot", "linear": "/v5/public/linear"}


@dataclass
class _Live:
    """One open connection of a synthetic session."""

    ws: ServerConnection
    conn: Connection
    pending: list[str] = field(default_factory=list)  # frames waiting for the feed's next flush


class SyntheticSessions:
    """Mixin for a `SubscribeReplayVenue`: its connections are fed by `self.feeds` (URL path -> feed).
    The subclass encodes events (`encode`) and cuts book snapshots (`book_snapshot`)."""

    feeds: dict[str, SyntheticFeed]

    def _init_sessions(self, feeds: dict[str, SyntheticFeed]) -> None:
        self.feeds = feeds
        self.live: dict[str, list[_Live]] = {path: [] for path in feeds}
        self.wanted: dict[str, Counter] = {path: Counter() for path in feeds}  # topic -> subscribed conns
        self.ended: set[str] = set()
        self.connections = 0

    def encode(self, path: str, event: Event, wanted: Counter) -> list[tuple[Hashable, str]]:
        """(topic, frame) for an event, only for topics someone on `path` is subscribed to."""
        raise NotImplementedError

    async def session(self, ws: ServerConnection, stats, speed: float) -> None:
        """Serve one connection until the feed ends or the client leaves (`speed`: the feed has its own)."""
        path = urlsplit(ws.request.path).path
        if path in self.ended:
            return  # the market is over: the server closes with "end of replay"
        self.connections += 1
        live = _Live(ws, Connection(path, started=True))
        lives = self.live[path]
        feed = self.feeds[path]
        if not lives and not feed.subscribers:  # one encoder pass per event, fanned out to connections
            feed.subscribers.append(lambda event: self._deliver(path, event))
            feed.flushers.append(lambda: self._flush_all(path, stats))
        lives.append(live)
        feed.start(lambda: self._end(path, stats))
        try:
            async for raw in ws:
                await self._flush(live, stats)  # what was generated before this request goes first
                await self._request(live, raw if isinstance(raw, str) else raw.decode())
        except ConnectionClosed:
            pass
        finally:
            lives.remove(live)
            self.wanted[path].subtract(live.conn.subscribed)

    async def _request(self, live: _Live, text: str) -> None:
        conn = live.conn
        before = set(conn.subscribed)
        replies = self.handle_request(conn, text)  # type: ignore[attr-defined]
        wanted = self.wanted[conn.path]
        wanted.update(conn.subscribed - before)
        wanted.subtract(before - conn.subscribed)
        await send_many(live.ws, replies)
        for topic in conn.subscribed - before:
            snapshot = self.book_snapshot(conn, topic)  # type: ignore[attr-defined]
            if snapshot is not None:
                self.sub_stats.snapshots_served[topic] += 1  # type: ignore[attr-defined]
                await live.ws.send(snapshot)

    async def _deliver(self, path: str, event: Event) -> None:
        lives = self.live[path]
        if not lives:
            return
        for topic, frame in self.encode(path, event, self.wanted[path]):
            for live in lives:
                if topic in live.conn.subscribed:
                    live.pending.append(frame)

    async def _flush(self, live: _Live, stats) -> None:
        frames, live.pending = live.pending, []
        try:
            await send_many(live.ws, frames)
            stats.frames_sent += len(frames)
        except ConnectionClosed:
            pass

    async def _flush_all(self, path: str, stats) -> None:
        for live in list(self.live[path]):
            await self._flush(live, stats)

    async def _end(self, path: str, stats) -> None:
        self.ended.add(path)
        await self._flush_all(path, stats)
        for live in list(self.live[path]):
            await live.ws.close(4100, "end of replay")


def _plan(messages: int, rate: float, trade_every: int, liquidation_every: int, funding_every: int,
          start_after_s: float, liquidation_symbols: tuple[str, ...] | None = None,
          funding_symbols: tuple[str, ...] | None = None) -> FeedPlan:  # fmt: skip
    return FeedPlan(messages, rate, trade_every, liquidation_every, funding_every, start_after_s,
                    liquidation_symbols, funding_symbols)  # fmt: skip


class BybitSyntheticVenue(SyntheticSessions, BybitVenue):
    """`markets`: category ("spot", "linear") -> market with `BASE-QUOTE` symbols (sent as `BASEQUOTE`).
    Liquidations and funding only on linear (`liquidation_every` / `funding_every` book changes)."""

    name = "bybit"

    def __init__(self, markets: dict[str, SyntheticMarket], messages: int = 2000, rate: float = 0.0,
                 trade_every: int = 10, liquidation_every: int = 5, funding_every: int = 10,
                 start_after_s: float = 0.3) -> None:  # fmt: skip
        unknown = set(markets) - set(BYBIT_PATHS)
        if unknown:
            raise ValueError(f"Bybit categories are spot and linear (got {sorted(unknown)})")
        paths = {BYBIT_PATHS[c]: [] for c in markets}
        instruments = {
            c: instruments_body(c, sorted(concat(s) for s in m.symbols)) for c, m in markets.items()
        }
        BybitVenue.__init__(self, paths, instruments)  # type: ignore[arg-type]
        self.markets = {BYBIT_PATHS[c]: m for c, m in markets.items()}
        self.by_exchange = {path: {concat(s): s for s in m.symbols} for path, m in self.markets.items()}
        self.encoders: dict[tuple[str, int], BybitEncoder] = {}  # (path, book depth) -> its u chain
        self.plain = {
            path: BybitEncoder(m) for path, m in self.markets.items()
        }  # trades, tickers, liquidations
        feeds = {}
        for category, market in markets.items():
            linear = category == "linear"
            every = tuple(market.symbols)  # liquidations and funding for each symbol in turn
            plan = _plan(messages, rate, trade_every, liquidation_every if linear else 0,
                         funding_every if linear else 0, start_after_s, every, every)  # fmt: skip
            feeds[BYBIT_PATHS[category]] = SyntheticFeed(market, plan)
        self._init_sessions(feeds)

    def _encoder(self, path: str, depth: int) -> BybitEncoder:
        key = (path, depth)
        if key not in self.encoders:  # u sequences are per topic, so per depth
            self.encoders[key] = BybitEncoder(self.markets[path], depth, seed=3 + depth)
        return self.encoders[key]

    def book_snapshot(self, conn: Connection, topic: Hashable) -> str | None:
        parts = str(topic).split(".")
        if len(parts) != 3 or parts[0] != "orderbook" or not parts[1].isdigit():
            return None
        symbol = self.by_exchange[conn.path].get(parts[2])
        return None if symbol is None else self._encoder(conn.path, int(parts[1])).snapshot(symbol)

    def encode(self, path: str, event: Event, wanted: Counter) -> list[tuple[Hashable, str]]:
        s = concat(event.symbol)
        if isinstance(event, BookChange):
            out = []
            for depth in {d for (p, d) in self.encoders if p == path}:
                topic = f"orderbook.{depth}.{s}"
                if wanted[topic] > 0:
                    out.append((topic, self.encoders[(path, depth)].delta(event)))
            return out
        topic, render = {
            Trade: (f"publicTrade.{s}", BybitEncoder.trade),
            Liquidation: (f"allLiquidation.{s}", BybitEncoder.liquidation),
            Funding: (f"tickers.{s}", BybitEncoder.ticker),
        }[type(event)]
        if wanted[topic] <= 0:
            return []
        return [(topic, render(self.plain[path], event))]  # type: ignore[operator]


class OkxSyntheticVenue(SyntheticSessions, OkxVenue):
    """`market` symbols are OKX instrument ids (`BTC-USDT`, `BTC-USDT-SWAP`, `BTC-USD-260925`): funding for
    the SWAPs, liquidations for SWAPs and FUTURES (each `*_every` book changes, instruments in turn)."""

    name = "okx"

    def __init__(self, market: SyntheticMarket, messages: int = 2000, rate: float = 0.0, trade_every: int = 10,
                 liquidation_every: int = 5, funding_every: int = 10, start_after_s: float = 0.3,
                 real_checksum: bool = True, net_mode_every: int = 2) -> None:  # fmt: skip
        OkxVenue.__init__(self, [])
        self.market = market
        self.inst_ids = sorted(market.symbols)
        self.encoder = OkxEncoder(market, real_checksum=real_checksum, net_mode_every=net_mode_every)
        kinds = {s: okx_inst_type(s) for s in market.symbols}
        derivatives = tuple(s for s in market.symbols if kinds[s] != "SPOT")
        swaps = tuple(s for s in market.symbols if kinds[s] == "SWAP")
        plan = _plan(messages, rate, trade_every, liquidation_every, funding_every, start_after_s,
                     derivatives, swaps)  # fmt: skip
        self._init_sessions({WS_PATH: SyntheticFeed(market, plan)})

    def book_snapshot(self, conn: Connection, topic: Hashable) -> str | None:
        if not isinstance(topic, tuple) or topic[0] != "books" or topic[1] not in self.market.books:
            return None
        return self.encoder.snapshot(topic[1])

    def encode(self, path: str, event: Event, wanted: Counter) -> list[tuple[Hashable, str]]:
        inst = event.symbol
        if isinstance(event, BookChange):
            topic: tuple[str, str] = ("books", inst)
            return [(topic, self.encoder.update(event))] if wanted[topic] > 0 else []
        if isinstance(event, Trade):
            topic = ("trades", inst)
            return [(topic, self.encoder.trade(event))] if wanted[topic] > 0 else []
        if isinstance(event, Funding):
            topic = ("funding-rate", inst)
            return [(topic, self.encoder.funding(event))] if wanted[topic] > 0 else []
        topic = ("liquidation-orders", okx_inst_type(inst))
        return [(topic, self.encoder.liquidation(event))] if wanted[topic] > 0 else []
