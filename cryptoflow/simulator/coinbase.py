"""Coinbase Advanced Trade, as the simulator serves it: the cryptofeed v3 recording (or a CryptoFlow
capture of a live session) replayed per connection, behind the real protocol (exchange-protocols.md §5):

  WS   /                                   subscribe by message, one per channel, within 5 s
  REST /api/v3/brokerage/market/products   the recorded body

What a connection receives: a `subscriptions` ack per (un)subscribe, then the recorded frames of the
channels it subscribed to (`level2` -> `l2_data`, `market_trades`, `heartbeats`, `ticker`, `candles`),
for its products, with `sequence_num` renumbered per connection (as Coinbase numbers what it sends on
that connection). A `level2` subscribe during the replay (a client's resync) gets a snapshot of the
book as the recording has built it so far. `drop` (recorded frame indices) injects losses: the frame
is not sent, so the client sees a `sequence_num` jump.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from websockets.asyncio.server import ServerConnection

from connectors.recordings.capture import is_capture, read_capture
from connectors.recordings.cryptofeed_v3 import read_cryptofeed_v3
from connectors.recordings.journal_capture import is_journal_capture, read_journal_capture
from connectors.recordings.records import Record
from cryptoflow import paths
from cryptoflow.simulator.binance_spot import RecordedFrame, RestReply
from cryptoflow.simulator.connections import merge_connections
from cryptoflow.simulator.synthetic.encoders import rfc3339
from operators.book.levels import OrderBook

if TYPE_CHECKING:
    from cryptoflow.simulator.server import SimulatorStats

log = logging.getLogger(__name__)

PRODUCTS_PATH = "/api/v3/brokerage/market/products"
CHANNEL_OF_SUBSCRIPTION = {
    "level2": "l2_data",
    "market_trades": "market_trades",
    "heartbeats": "heartbeats",
    "ticker": "ticker",
    "ticker_batch": "ticker_batch",
    "candles": "candles",
    "status": "status",
}
SUBSCRIBE_DEADLINE_S = 5.0
_SEQ = re.compile(r'"sequence_num":\d+')


@dataclass(slots=True)
class CoinbaseFrame:
    index: int  # position among the recording's received frames
    ts: float
    channel: str
    products: frozenset[str]
    text: str
    l2: list[tuple[str, str, list[list[str]], list[list[str]]]]  # (type, product, bids, asks)


def _products_of(msg: dict) -> frozenset[str]:
    found = set()
    for event in msg.get("events", []):
        if "product_id" in event:
            found.add(event["product_id"])
        for item in event.get("trades", []) + event.get("tickers", []) + event.get("candles", []):
            if "product_id" in item:
                found.add(item["product_id"])
    return frozenset(found)


class CoinbaseVenue:
    name = "coinbase"

    def __init__(self, frames: list[CoinbaseFrame], products_body: bytes, speed: float = 0.0,
                 drop: set[int] | None = None) -> None:  # fmt: skip
        self.frames, self.products_body, self.speed = frames, products_body, speed
        self.drop = drop or set()
        self.linger_s = 1.0  # after the last frame, how long to keep answering requests before closing
        self.sessions: list[dict] = []  # per connection: what it subscribed, sent and resynced (tests)

    @classmethod
    def from_recording(cls, path: Path = paths.COINBASE_V3, speed: float = 0.0,
                       drop: set[int] | None = None) -> CoinbaseVenue:  # fmt: skip
        """A cryptofeed v3 recording, a CryptoFlow capture file (`connectors/recordings/capture.py`) or a
        `cryptoflow capture` directory: a live session taken with either replays without a code change."""
        frames: list[CoinbaseFrame] = []
        products = b'{"products":[]}'
        records: Iterable[Record]
        if is_journal_capture(path):  # `cryptoflow capture`: one connection per shard (and reconnect)
            captured = list(read_journal_capture(path))
            received = merge_connections(captured, lambda r: _SEQ.sub("", r.data, count=1))
            records = [r for r in captured if r.kind == "http"] + received
        else:
            with Path(path).open("rb") as handle:
                first = handle.readline()
            records = (read_capture if is_capture(first) else read_cryptofeed_v3)(path)
        for record in records:
            if record.kind == "http" and PRODUCTS_PATH in (record.url or ""):
                products = record.data.encode()
            elif record.kind == "recv":
                msg = orjson.loads(record.data)
                channel = msg.get("channel", "")
                if channel == "subscriptions":
                    continue  # the simulator acks subscriptions itself
                l2 = []
                if channel == "l2_data":
                    for ev in msg["events"]:
                        bids = [
                            [u["price_level"], u["new_quantity"]] for u in ev["updates"] if u["side"] == "bid"
                        ]
                        asks = [
                            [u["price_level"], u["new_quantity"]] for u in ev["updates"] if u["side"] != "bid"
                        ]
                        l2.append((ev["type"], ev["product_id"], bids, asks))
                frames.append(
                    CoinbaseFrame(len(frames), record.ts, channel, _products_of(msg), record.data, l2)
                )
        return cls(frames, products, speed, drop)

    # ------------------------------------------------------------------ HTTP / routing
    def frames_for(self, path: str) -> list[RecordedFrame] | None:
        return [] if path.split("?", 1)[0] in ("/", "") else None

    def rest(self, path: str) -> RestReply | None:
        if path.split("?", 1)[0] == PRODUCTS_PATH:
            return RestReply(200, self.products_body)
        return None

    # ------------------------------------------------------------------ WebSocket
    async def serve(self, ws: ServerConnection, stats: SimulatorStats) -> None:
        session = {"subscribed": {}, "sent": 0, "snapshots_on_resubscribe": 0, "dropped": 0}
        self.sessions.append(session)
        subs: dict[str, set[str]] = session["subscribed"]
        seq = [-1]
        books: dict[str, OrderBook] = {}
        inbox: asyncio.Queue = asyncio.Queue()

        async def send(text: str, lose: bool = False) -> None:
            seq[0] += 1
            if lose:  # numbered but never delivered: the client sees the jump
                session["dropped"] += 1
                return
            await ws.send(_SEQ.sub(f'"sequence_num":{seq[0]}', text, count=1))
            session["sent"] += 1

        async def handle(raw: str | bytes, replaying: bool) -> None:
            try:
                msg = orjson.loads(raw)
                kind, channel, products = msg["type"], msg["channel"], list(msg.get("product_ids", []))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                await send(self._envelope("error", '{"type":"error","message":"malformed request"}'))
                return
            wire = CHANNEL_OF_SUBSCRIPTION.get(channel)
            if wire is None or kind not in ("subscribe", "unsubscribe"):
                await send(
                    self._envelope("error", f'{{"type":"error","message":"unknown channel {channel}"}}')
                )
                return
            chosen = subs.setdefault(wire, set())
            if kind == "subscribe":
                fresh = [p for p in products if p not in chosen]
                chosen.update(products)
            else:
                fresh = []
                chosen.difference_update(products)
            body = ",".join(f'"{c}":{orjson.dumps(sorted(p)).decode()}' for c, p in subs.items() if p)
            await send(self._envelope("subscriptions", f'{{"subscriptions":{{{body}}}}}'))
            if replaying and wire == "l2_data":
                for product in fresh:
                    if product in books:
                        session["snapshots_on_resubscribe"] += 1
                        await send(self._snapshot(product, books[product]))

        try:
            first = await asyncio.wait_for(ws.recv(), SUBSCRIBE_DEADLINE_S)
        except TimeoutError:
            await ws.close(1008, "no subscribe within 5 s")
            return
        await handle(first, False)
        while True:  # the client sends one message per channel back to back
            try:
                await handle(await asyncio.wait_for(ws.recv(), 0.3), False)
            except TimeoutError:
                break

        async def read() -> None:
            async for raw in ws:
                await inbox.put(raw)

        stats.frames_planned += sum(
            1 for f in self.frames
            if subs.get(f.channel) and (not f.products or f.products & subs[f.channel]) and f.index not in self.drop
        )  # fmt: skip
        reader = asyncio.get_running_loop().create_task(read())
        try:
            await self._replay(ws, send, handle, inbox, books, subs, session, stats)
            while True:  # requests the client sent about the last frames (a resync) still get answers
                try:
                    await handle(await asyncio.wait_for(inbox.get(), self.linger_s), True)
                except TimeoutError:
                    break
        finally:
            reader.cancel()
        await ws.close(4100, "end of replay")

    async def _replay(self, ws, send, handle, inbox, books, subs, session, stats) -> None:
        loop = asyncio.get_running_loop()
        start_wall = loop.time()
        start_rec = self.frames[0].ts if self.frames else 0.0
        for i, frame in enumerate(self.frames):
            while not inbox.empty():
                await handle(inbox.get_nowait(), True)
            for kind, product, bids, asks in frame.l2:  # the recording's book, whatever is sent
                book = books.setdefault(product, OrderBook(depth_cap=1 << 30))
                if kind == "snapshot":
                    book.load(bids, asks)
                else:
                    book.apply(bids, asks)
            if self.speed > 0:
                delay = start_wall + (frame.ts - start_rec) / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif i % 64 == 0:
                await asyncio.sleep(0)
            wanted = subs.get(frame.channel)
            if not wanted or (frame.products and not frame.products & wanted):
                continue
            lost = frame.index in self.drop
            await send(frame.text, lose=lost)
            if not lost:
                stats.frames_sent += 1  # recorded frames only (acks and resync snapshots are extra)

    def _envelope(self, channel: str, event: str) -> str:
        return (
            f'{{"channel":"{channel}","client_id":"","timestamp":"{rfc3339(int(self._now() * 1e6))}",'
            f'"sequence_num":0,"events":[{event}]}}'
        )

    @staticmethod
    def _now() -> float:
        return time.time()

    def _snapshot(self, product: str, book: OrderBook) -> str:
        ts = rfc3339(int(self._now() * 1e6))
        parts = [f'{{"side":"bid","event_time":"{ts}","price_level":"{p}","new_quantity":"{q}"}}'
                 for p, q in book.bids.top(1 << 30)]  # fmt: skip
        parts += [f'{{"side":"offer","event_time":"{ts}","price_level":"{p}","new_quantity":"{q}"}}'
                  for p, q in book.asks.top(1 << 30)]  # fmt: skip
        return self._envelope(
            "l2_data", f'{{"type":"snapshot","product_id":"{product}","updates":[{",".join(parts)}]}}'
        )
