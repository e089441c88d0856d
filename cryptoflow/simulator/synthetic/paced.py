"""A Kraken v2 load generator that can offer 50k+ book frames/s: every frame is made and encoded before the
timed window, only the sends are paced.

Why: `kraken.KrakenV2SyntheticVenue` moves the market, diffs each subscription's view, computes the CRC32
checksum and formats the frame while it sends; on one core that tops out at ~4k frames/s, so a latency
benchmark at 10k or 50k frames/s would measure the generator. Here `pregenerate` runs the same market and
`KrakenV2Encoder` up front (the frames are byte-identical in everything but the timestamp) and
`PacedKrakenV2Venue` only stamps and writes them: at each wake-up every frame that is due by now is stamped
with the current wall clock (so exchange_ts -> ingest is still measured from the send) and written in one
socket write per connection. The offer is open-loop (the rate does not drop when the reader is slow: the
backlog shows as latency), up to `max_buffer` bytes queued per connection.

A symbol subscribed after the feed started (a resubscribe after a checksum mismatch, a reconnect) gets the
snapshot of its book at that point: the initial snapshot with that symbol's frames so far applied. A
connection made after the last frame gets its acks and snapshots (the book at the end of the feed), then
the same 4100 "end of replay" close as the others once it has been quiet for `LATE_CLOSE_S`: there are no
updates left to send it, and a silent open socket would only look like a stalled feed to the client.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosedOK
from websockets.protocol import State

from cryptoflow.simulator.binance_spot import RecordedFrame, RestReply
from cryptoflow.simulator.kraken import asset_pairs_reply
from cryptoflow.simulator.synthetic.encoders import KrakenV2Encoder, kraken_symbol, rfc3339
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from operators.book.checksums import kraken_checksum
from operators.book.levels import OrderBook

if TYPE_CHECKING:
    from cryptoflow.simulator.server import SimulatorStats

STAMP = '"timestamp":"'
LATE_CLOSE_S = 0.2  # a connection made after the feed ended is closed after this long without a request
TAIL = b'"}]}'
_LEVEL = re.compile(rb'"price":([0-9.]+),"qty":([0-9.]+)')


@dataclass
class PregeneratedBook:
    """`messages` Kraken v2 book frames, each split around its timestamp value: `heads[i]` + stamp + TAIL."""

    depth: int
    snapshots: dict[str, bytes]  # v2 symbol -> snapshot head (the book before the first update)
    symbols: list[str]  # v2 symbol of update i
    heads: list[bytes]

    def book_at(self, symbol: str, position: int) -> OrderBook:
        """`symbol`'s subscribed-depth view after the updates before `position` (rare path: resubscribes)."""
        view = OrderBook(depth_cap=1 << 30)
        bids, asks = _levels(self.snapshots[symbol])
        view.load(bids, asks)
        for i in range(position):
            if self.symbols[i] == symbol:
                bids, asks = _levels(self.heads[i])
                for side, levels in ((view.bids, bids), (view.asks, asks)):
                    for price, qty in levels:
                        side.set(price, qty)
                    side.truncate(self.depth, remember=False)
        return view


def _levels(head: bytes) -> tuple[list[list[str]], list[list[str]]]:
    bids, asks = head.split(b'"asks":', 1)
    return (
        [[p.decode(), q.decode()] for p, q in _LEVEL.findall(bids)],
        [[p.decode(), q.decode()] for p, q in _LEVEL.findall(asks)],
    )


def _split(frame: str) -> bytes:
    cut = frame.rindex(STAMP) + len(STAMP)
    if frame[cut:].encode()[-len(TAIL) :] != TAIL:
        raise ValueError("unexpected Kraken v2 frame layout")
    return frame[:cut].encode()


def pregenerate(market: SyntheticMarket, messages: int, depth: int = 10) -> PregeneratedBook:
    """Snapshots of every symbol, then `messages` update frames (changes outside the view make none)."""
    encoder = KrakenV2Encoder(market, depth)
    snapshots = {kraken_symbol(s): _split(encoder.snapshot(s)) for s in market.symbols}
    symbols: list[str] = []
    heads: list[bytes] = []
    while len(heads) < messages:
        change = market.next_change()
        frame = encoder.update(change)
        if frame is not None:
            symbols.append(kraken_symbol(change.symbol))
            heads.append(_split(frame))
    return PregeneratedBook(depth, snapshots, symbols, heads)


@dataclass
class PacedSession:
    ws: ServerConnection
    books: set[str] = field(default_factory=set)
    book_frames: int = 0
    resubscribes: int = 0
    batch: list[bytes] = field(default_factory=list)


class PacedKrakenV2Venue:
    """Serves `/v2` like `kraken.KrakenV2SyntheticVenue` (status, book subscribe with snapshot, ping, 4100
    at the end; trade subscriptions are acknowledged and get nothing) from a `PregeneratedBook`, at `rate`
    frames per second (0 = as fast as the socket drains), starting `start_after_s` after the first
    connection."""

    name = "kraken"

    def __init__(
        self,
        book: PregeneratedBook,
        market: SyntheticMarket,
        rate: float = 0.0,
        start_after_s: float = 0.3,
        max_buffer: int = 64 << 20,
    ) -> None:
        self.book, self.rate, self.start_after_s, self.max_buffer = book, rate, start_after_s, max_buffer
        self.market = market  # for the pair list only: its books are past the end of the feed
        self.sessions: list[PacedSession] = []
        self.owner: dict[str, PacedSession] = {}  # v2 symbol -> the connection subscribed to its book
        self.changes_sent = 0  # frames due and handed to a socket (or to nobody: unsubscribed symbol)
        self.blocked_s = 0.0  # time the sender waited because a connection had max_buffer queued
        self.started_at: float | None = None  # time.monotonic() of the first paced send
        self.finished_at: float | None = None  # and of the last frame's write
        self.ended = False  # every frame was sent and the connections of that time closed
        self._task: asyncio.Task | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ HTTP / routing
    def frames_for(self, path: str) -> list[RecordedFrame] | None:
        return [] if path.split("?", 1)[0].rstrip("/") == "/v2" else None

    def rest(self, path: str) -> RestReply | None:
        return asset_pairs_reply(self.market, path, legacy_names=False)

    # ------------------------------------------------------------------ WebSocket
    async def serve(self, ws: ServerConnection, stats: SimulatorStats) -> None:
        session = PacedSession(ws)
        self.sessions.append(session)
        await ws.send(orjson.dumps({"channel": "status", "type": "update", "data": [
            {"api_version": "v2", "connection_id": next(self._ids), "system": "online", "version": "2.0.10"}
        ]}).decode())  # fmt: skip
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(stats))
        try:
            while True:
                try:
                    raw = await (asyncio.wait_for(ws.recv(), LATE_CLOSE_S) if self.ended else ws.recv())
                except TimeoutError:  # no updates will come: the end-of-replay close the others got
                    await ws.close(4100, "end of replay")
                    break
                await self._request(session, raw)
        except ConnectionClosedOK:
            pass
        finally:
            for symbol in session.books:
                if self.owner.get(symbol) is session:
                    del self.owner[symbol]

    async def _request(self, session: PacedSession, raw: str | bytes) -> None:
        ws = session.ws
        try:
            msg = orjson.loads(raw)
            method, req_id = msg["method"], msg.get("req_id")
            params = msg.get("params") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            await ws.send('{"error":"malformed request","success":false}')
            return
        now = rfc3339(time.time_ns() // 1000)
        if method == "ping":
            await ws.send(
                orjson.dumps({"method": "pong", "req_id": req_id, "time_in": now, "time_out": now}).decode()
            )
            return
        channel, symbols = params.get("channel"), params.get("symbol") or []
        unknown = [s for s in symbols if s not in self.book.snapshots]
        depth = int(params.get("depth", 10)) if channel == "book" else self.book.depth
        if (
            method not in ("subscribe", "unsubscribe")
            or channel not in ("book", "trade")
            or unknown
            or (depth != self.book.depth)
        ):
            await ws.send(orjson.dumps({"method": method, "success": False, "req_id": req_id,
                                        "error": f"bad request ({channel}, {unknown}, depth {depth})"}).decode())  # fmt: skip
            return
        for symbol in symbols:
            await ws.send(orjson.dumps({"method": method, "success": True, "req_id": req_id,
                                        "result": {"channel": channel, "symbol": symbol},
                                        "time_in": now, "time_out": now}).decode())  # fmt: skip
            if channel != "book":
                continue
            if method == "unsubscribe":
                session.books.discard(symbol)
                if self.owner.get(symbol) is session:
                    del self.owner[symbol]
                continue
            if symbol in session.books:
                continue  # already subscribed: an ack, no new snapshot (as Kraken)
            session.books.add(symbol)
            self.owner[symbol] = session
            await ws.send(self._snapshot(session, symbol).decode())  # text frames, as Kraken

    def _snapshot(self, session: PacedSession, symbol: str) -> bytes:
        stamp = rfc3339(time.time_ns() // 1000).encode()
        position = self.changes_sent
        if position == 0:
            return self.book.snapshots[symbol] + stamp + TAIL
        session.resubscribes += 1
        view = self.book.book_at(symbol, position)
        bids, asks = view.bids.top(self.book.depth), view.asks.top(self.book.depth)
        levels = lambda side: ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in side)  # noqa: E731
        return (
            (
                f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"{symbol}","bids":[{levels(bids)}],'
                f'"asks":[{levels(asks)}],"checksum":{kraken_checksum(view)},{STAMP}'
            ).encode()
            + stamp
            + TAIL
        )

    # ------------------------------------------------------------------ the paced sender
    async def _run(self, stats: SimulatorStats) -> None:
        await asyncio.sleep(self.start_after_s)
        loop = asyncio.get_running_loop()
        heads, symbols, total = self.book.heads, self.book.symbols, len(self.book.heads)
        start, sent = loop.time(), 0
        self.started_at = time.monotonic()
        try:
            while sent < total:
                if self.rate > 0:
                    due = min(total, int((loop.time() - start) * self.rate) + 1)
                else:
                    due = min(total, sent + 256)
                if due > sent:
                    stamp = rfc3339(time.time_ns() // 1000).encode() + TAIL
                    owner = self.owner
                    for i in range(sent, due):
                        session = owner.get(symbols[i])
                        if session is not None:
                            session.batch.append(heads[i] + stamp)
                    sent = self.changes_sent = due
                    for session in self.sessions:
                        if session.batch:
                            stats.frames_sent += self._write(session)
                    await self._wait_for_buffers()
                if self.rate > 0:
                    await asyncio.sleep(max(0.0, start + sent / self.rate - loop.time()))
                else:
                    await asyncio.sleep(0)
            self.finished_at = time.monotonic()
            while any(_buffered(s.ws) for s in self.sessions):
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.2)
        finally:
            self.ended = True  # connections made from now on are closed in `serve`
            for session in list(self.sessions):
                await session.ws.close(4100, "end of replay")

    def _write(self, session: PacedSession) -> int:
        """Frame and write the batch without `send_context`, which waits for the socket to drain: the
        offer must not slow down with the reader (`_wait_for_buffers` bounds the queue instead). Nothing
        awaits between framing and writing, so no other send on this connection can interleave."""
        frames, session.batch = session.batch, []
        ws = session.ws
        if ws.protocol.state is not State.OPEN or ws.transport is None or ws.transport.is_closing():
            return 0
        for frame in frames:
            ws.protocol.send_text(frame)
        ws.transport.write(b"".join(ws.protocol.data_to_send()))
        session.book_frames += len(frames)
        return len(frames)

    async def _wait_for_buffers(self) -> None:
        began = time.monotonic()
        while any(_buffered(s.ws) > self.max_buffer for s in self.sessions):
            await asyncio.sleep(0.001)
        self.blocked_s += time.monotonic() - began


def _buffered(ws: ServerConnection) -> int:
    transport = ws.transport
    return 0 if transport is None or transport.is_closing() else transport.get_write_buffer_size()
