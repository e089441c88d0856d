"""Replay for venues where the client subscribes with messages on an open socket (Bybit v5, OKX v5).

Each WebSocket connection gets its own replay of the recorded frames of its URL path, in recorded
order, filtered to the topics it is subscribed to *at the moment the frame goes out*. The replay
starts `settle_s` after the connection's first subscribe request (clients send all their requests
in one burst), so a client that subscribes everything at once receives exactly what the recorder got.

The venue keeps the true book of every recorded book topic as the replay passes it (frames dropped in
transit included, see `drop`), so a topic subscribed after the replay started - in particular the
unsubscribe + subscribe a client does to resync a book - is answered with a fresh snapshot of the true
book at that point, as the live exchange does. `drop` = {(path, index)} of frames lost in transit: the
manipulated replay that proves a connector's gap detection and resync.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed


@dataclass(frozen=True, slots=True)
class TopicFrame:
    ts: float  # recorder's receive clock, seconds
    topic: Hashable  # the subscription this frame is delivered under
    text: str
    book: tuple | None = None  # (book key, is_snapshot, bids, asks, ids) for the true book


class TrueBook:
    """Price text -> level as the venue sends it ([px, sz, ...]); sorted only when a snapshot is cut."""

    def __init__(self) -> None:
        self.bids: dict[str, list] = {}
        self.asks: dict[str, list] = {}
        self.ids: dict = {}
        self.ts_ms: int | None = None

    def load(self, bids: list, asks: list) -> None:
        self.bids, self.asks = {}, {}
        self.apply(bids, asks)

    def apply(self, bids: list, asks: list) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for level in levels:
                if Decimal(level[1]) == 0:
                    side.pop(level[0], None)
                else:
                    side[level[0]] = list(level)

    def sorted_bids(self) -> list[list]:
        return [self.bids[p] for p in sorted(self.bids, key=Decimal, reverse=True)]

    def sorted_asks(self) -> list[list]:
        return [self.asks[p] for p in sorted(self.asks, key=Decimal)]


@dataclass
class Connection:
    path: str
    subscribed: set = field(default_factory=set)
    books: dict[Hashable, TrueBook] = field(default_factory=dict)
    started: bool = False
    first_subscribe: asyncio.Event = field(default_factory=asyncio.Event)
    ops: int = 0


@dataclass
class SubscribeStats:
    """What clients asked for: tests read it (resubscribes, pings, refused requests)."""

    requests: Counter = field(default_factory=Counter)  # (path, op) -> requests
    topics: Counter = field(default_factory=Counter)  # (op, topic) -> times
    snapshots_served: Counter = field(default_factory=Counter)  # book topic -> snapshots cut from truth
    refused: Counter = field(default_factory=Counter)  # reason -> requests refused
    dropped: int = 0  # frames lost in transit on purpose


class SubscribeReplayVenue:
    """Base of the Bybit / OKX simulator venues; subclasses speak the protocol."""

    name = ""
    settle_s = 0.2

    def __init__(self, paths: dict[str, list[TopicFrame]], drop: set[tuple[str, int]] | None = None) -> None:
        self.paths = paths
        self.drop = drop or set()
        self.sub_stats = SubscribeStats()
        self.last_send_at = 0.0  # loop time of the last replayed frame (keepalive tests)

    # ------------------------------------------------------------------ protocol hooks
    def handle_request(self, conn: Connection, text: str) -> list[str]:
        """Answer one client frame (subscribe, unsubscribe, ping); may change `conn.subscribed`.
        Returns the replies; newly subscribed book topics get a snapshot via `book_snapshot`."""
        raise NotImplementedError

    def book_snapshot(self, conn: Connection, topic: Hashable) -> str | None:
        """A snapshot frame of the true book of `topic`, or None if it is not a book topic / not known."""
        raise NotImplementedError

    # ------------------------------------------------------------------ server interface
    def frames_for(self, path: str) -> list | None:
        return [] if urlsplit(path).path in self.paths else None

    async def session(self, ws: ServerConnection, stats, speed: float) -> None:
        conn = Connection(urlsplit(ws.request.path).path)
        frames = self.paths[conn.path]
        reader = asyncio.get_running_loop().create_task(self._reader(ws, conn))
        try:
            started = asyncio.get_running_loop().create_task(conn.first_subscribe.wait())
            await asyncio.wait([started, reader], return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                return
            await asyncio.sleep(self.settle_s)
            conn.started = True
            stats.frames_planned += len(frames)
            await self._replay(ws, conn, frames, stats, speed)
        finally:
            reader.cancel()

    async def _reader(self, ws: ServerConnection, conn: Connection) -> None:
        try:
            async for text in ws:
                before = set(conn.subscribed)
                for reply in self.handle_request(conn, text if isinstance(text, str) else text.decode()):
                    await ws.send(reply)
                if conn.started:
                    for topic in conn.subscribed - before:
                        snapshot = self.book_snapshot(conn, topic)
                        if snapshot is not None:
                            self.sub_stats.snapshots_served[topic] += 1
                            await ws.send(snapshot)
        except ConnectionClosed:
            return

    async def _replay(self, ws: ServerConnection, conn: Connection, frames: list[TopicFrame], stats,
                      speed: float) -> None:  # fmt: skip
        loop = asyncio.get_running_loop()
        start_wall, start_rec = loop.time(), frames[0].ts if frames else 0.0
        for i, frame in enumerate(frames):
            if speed > 0:
                delay = start_wall + (frame.ts - start_rec) / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif i % 64 == 0:
                await asyncio.sleep(0)
            if frame.book is not None:
                key, is_snapshot, bids, asks, ids = frame.book
                book = conn.books.setdefault(key, TrueBook())
                (book.load if is_snapshot else book.apply)(bids, asks)
                book.ids = ids
            if (conn.path, i) in self.drop:
                self.sub_stats.dropped += 1
                continue
            if frame.topic in conn.subscribed:
                await ws.send(frame.text)
                stats.frames_sent += 1
                self.last_send_at = loop.time()
