"""Kraken spot WebSocket v2, as the simulator serves it, from the synthetic market (no contiguous v2
recording exists). Real protocol shapes (exchange-protocols.md §6):

  WS   /v2                   `status` on connect; `subscribe`/`unsubscribe` for `book` (depth 10/25/100/
                             500/1000, snapshot) and `trade`; `ping` -> `pong`; `heartbeat` when idle
  REST /0/public/AssetPairs  the market's pairs, with Kraken's legacy `wsname` (XBT for BTC)
  WS   /                     optional (`v1=`): WebSocket v1, the recordings replayed (`kraken_v1.py`)

One market is shared by every connection (as on the exchange): a `SyntheticFeed` makes `messages` book
changes at `rate` per second (0 = as fast as possible) plus a trade every `trade_every` changes, and
broadcasts them; each connection's book subscription has its own depth view and checksums
(`synthetic.encoders.KrakenV2Encoder`). When the generator is done every connection is closed with 4100
(end of replay). `drop_updates` (indices of book frames on a connection) injects losses, which the
client can only notice through the checksum; `cut_first_connection_after` closes the first connection
(code 1011) after that many book frames; `silent_after_end` leaves the subscribes of a connection made
after the market ended unanswered (no ack, no snapshot; pings still get pongs). The market
(`self.market.books`) is the truth.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from cryptoflow.simulator.batching import send_many
from cryptoflow.simulator.binance_spot import RecordedFrame, RestReply
from cryptoflow.simulator.kraken_v1 import KrakenV1ReplayVenue
from cryptoflow.simulator.synthetic.encoders import KrakenV2Encoder, kraken_symbol, rfc3339
from cryptoflow.simulator.synthetic.feed import Event, FeedPlan, SyntheticFeed
from cryptoflow.simulator.synthetic.market import BookChange, SyntheticMarket, Trade

if TYPE_CHECKING:
    from cryptoflow.simulator.server import SimulatorStats

log = logging.getLogger(__name__)

DEPTHS = (10, 25, 100, 500, 1000)
_LEGACY = {"BTC": "XBT", "DOGE": "XDG"}


def asset_pairs_reply(market: SyntheticMarket, path: str, legacy_names: bool = True) -> RestReply | None:
    """Kraken's `/0/public/AssetPairs` for the synthetic market's symbols (None for any other path).
    `legacy_names` spells BTC and DOGE as Kraken's REST does (XBT, XDG)."""
    if path.split("?", 1)[0] != "/0/public/AssetPairs":
        return None
    result = {}
    for symbol in market.symbols:
        base, quote = symbol.split("-")
        rename = _LEGACY if legacy_names else {}
        wsname = f"{rename.get(base, base)}/{rename.get(quote, quote)}"
        result[wsname.replace("/", "")] = {
            "altname": wsname.replace("/", ""), "wsname": wsname, "base": base, "quote": quote,
            "pair_decimals": market.pd, "lot_decimals": market.qd, "status": "online",
        }  # fmt: skip
    return RestReply(200, orjson.dumps({"error": [], "result": result}))


@dataclass
class KrakenSession:
    ws: ServerConnection
    encoder: KrakenV2Encoder | None = None
    books: set[str] = field(default_factory=set)  # v2 symbols with a book subscription
    trades: set[str] = field(default_factory=set)
    book_frames: int = 0
    dropped: int = 0
    resubscribes: int = 0
    requests: list[dict] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # frames waiting for the feed's next flush


class KrakenV2SyntheticVenue:
    name = "kraken"

    def __init__(self, market: SyntheticMarket, messages: int = 2000, rate: float = 0.0, trade_every: int = 10,
                 drop_updates: set[int] | None = None, start_after_s: float = 0.3,
                 v1: KrakenV1ReplayVenue | None = None, cut_first_connection_after: int | None = None,
                 silent_after_end: bool = False, start_at_subscriptions: int | None = None) -> None:  # fmt: skip
        self.market, self.v1 = market, v1
        self.silent_after_end = silent_after_end  # fault: subscribes after the market ended go unanswered
        self.cut_after = cut_first_connection_after  # fault injection: drop connection 1 after N book frames
        # `start_at_subscriptions`: the market starts once that many (connection, channel, pair)
        # subscriptions are served, at the latest `start_after_s` after the first connection
        start_when = (
            None if start_at_subscriptions is None else lambda: self.subscriptions() >= start_at_subscriptions
        )
        plan = FeedPlan(messages, rate, trade_every, start_after_s=start_after_s, start_when=start_when)
        self.feed = SyntheticFeed(market, plan)
        self.drop_updates = drop_updates or set()
        self.sessions: list[KrakenSession] = []
        self._ids = itertools.count(1)
        self.by_v2 = {kraken_symbol(s): s for s in market.symbols}

    def subscriptions(self) -> int:
        """Book and trade subscriptions served so far, over every connection."""
        return sum(len(s.books) + len(s.trades) for s in self.sessions)

    # ------------------------------------------------------------------ HTTP / routing
    def frames_for(self, path: str) -> list[RecordedFrame] | None:
        if self.v1 is not None and self.v1.frames_for(path) is not None:
            return []
        return [] if path.split("?", 1)[0].rstrip("/") == "/v2" else None

    def rest(self, path: str) -> RestReply | None:
        return asset_pairs_reply(self.market, path)

    # ------------------------------------------------------------------ WebSocket
    async def serve(self, ws: ServerConnection, stats: SimulatorStats) -> None:
        if self.v1 is not None and ws.request is not None and self.v1.frames_for(ws.request.path) is not None:
            await self.v1.serve(ws, stats)  # v1 (`/`): the 2021 recordings
            return
        session = KrakenSession(ws)
        self.sessions.append(session)
        await ws.send(orjson.dumps({"channel": "status", "type": "update", "data": [
            {"api_version": "v2", "connection_id": next(self._ids), "system": "online", "version": "2.0.10"}
        ]}).decode())  # fmt: skip
        subscriber, flusher = (
            lambda event: self._deliver(session, event, stats),
            lambda: self._flush(session, stats),
        )
        self.feed.subscribers.append(subscriber)
        self.feed.flushers.append(flusher)
        self.feed.start(self._close_all)
        # connected after the market ended (e.g. a reconnect racing the end): `_close_all` has run, so
        # this connection is served its subscriptions (the final books) and then ended the same way, or
        # a `stop_at_replay_end` client would wait forever
        after_end = self.feed.task.done() and not self.silent_after_end
        closing: asyncio.Task | None = None
        try:
            async for raw in ws:
                await self._flush(session, stats)  # what was generated before this request goes first
                await self._request(session, raw)
                if after_end and closing is None and (session.books or session.trades):
                    closing = asyncio.create_task(self._close_after_end(ws))
        finally:  # a closed connection stops costing an encoder pass per change (chaos runs reconnect a lot)
            self.feed.subscribers.remove(subscriber)
            self.feed.flushers.remove(flusher)

    @staticmethod
    def frame_key(text: str) -> str | None:
        """`book:<symbol>` for a book frame (the simulator logs the last one each client received)."""
        if not text.startswith('{"channel":"book"'):
            return None
        start = text.index('"symbol":"') + 10
        return "book:" + text[start : text.index('"', start)]

    async def _request(self, session: KrakenSession, raw: str | bytes) -> None:
        ws = session.ws
        try:
            msg = orjson.loads(raw)
            method, req_id = msg["method"], msg.get("req_id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await ws.send('{"error":"malformed request","success":false}')
            return
        session.requests.append(msg)
        if method == "ping":
            await ws.send(orjson.dumps({"method": "pong", "req_id": req_id, "time_in": self._now(),
                                        "time_out": self._now()}).decode())  # fmt: skip
            return
        if self.silent_after_end and self.feed.task is not None and self.feed.task.done():
            return  # an exchange that accepts the socket, answers pings and never serves the subscribe
        params = msg.get("params") or {}
        channel, symbols = params.get("channel"), params.get("symbol") or []
        unknown = [s for s in symbols if s not in self.by_v2]
        if method not in ("subscribe", "unsubscribe") or channel not in ("book", "trade") or unknown:
            await ws.send(orjson.dumps({"method": method, "success": False, "req_id": req_id,
                                        "error": f"bad request ({channel}, {unknown})"}).decode())  # fmt: skip
            return
        if channel == "book":
            depth = int(params.get("depth", 10))
            if depth not in DEPTHS:
                await ws.send(orjson.dumps({"method": method, "success": False, "req_id": req_id,
                                            "error": "Unsupported depth"}).decode())  # fmt: skip
                return
            if session.encoder is None or session.encoder.depth != depth:
                session.encoder = KrakenV2Encoder(self.market, depth)
        for symbol in symbols:
            await ws.send(orjson.dumps({"method": method, "success": True, "req_id": req_id,
                                        "result": {"channel": channel, "symbol": symbol},
                                        "time_in": self._now(), "time_out": self._now()}).decode())  # fmt: skip
            target = session.books if channel == "book" else session.trades
            if method == "unsubscribe":
                target.discard(symbol)
                continue
            if channel == "book" and symbol in session.books:
                continue  # already subscribed: Kraken answers with an error-free ack, no new snapshot
            if channel == "book" and self.feed.changes_sent:
                session.resubscribes += 1
            target.add(symbol)
            if channel == "book" and session.encoder is not None:
                await ws.send(session.encoder.snapshot(self.by_v2[symbol]))

    async def _deliver(self, session: KrakenSession, event: Event, stats: SimulatorStats) -> None:
        if isinstance(event, BookChange):
            if kraken_symbol(event.symbol) not in session.books or session.encoder is None:
                return
            frame = session.encoder.update(event)
            if frame is None:
                return
            session.book_frames += 1
            if (
                self.cut_after is not None
                and session is self.sessions[0]
                and session.book_frames == self.cut_after
            ):
                await session.ws.close(1011, "simulated failure")
                return
            if session.book_frames in self.drop_updates:
                session.dropped += 1
                return
            session.pending.append(frame)
        elif isinstance(event, Trade) and kraken_symbol(event.symbol) in session.trades:
            session.pending.append(KrakenV2Encoder.trade_frame(event))

    async def _flush(self, session: KrakenSession, stats: SimulatorStats) -> None:
        frames, session.pending = session.pending, []
        try:
            await send_many(session.ws, frames)
            stats.frames_sent += len(frames)
        except ConnectionClosed:
            pass

    @staticmethod
    async def _close_after_end(ws: ServerConnection) -> None:
        await asyncio.sleep(0.2)  # the connection's other subscribe requests are served first
        await ws.close(4100, "end of replay")

    async def _close_all(self) -> None:
        for session in self.sessions:
            await session.ws.close(4100, "end of replay")

    @staticmethod
    def _now() -> str:
        return rfc3339(time.time_ns() // 1000)
