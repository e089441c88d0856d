"""The local exchange simulator: real WebSocket and HTTP over a loopback socket, replaying recordings.

One port per venue serves both the venue's WebSocket streams and its REST endpoints. Each WebSocket
connection gets its own replay of the frames it subscribed to, at recorded speed (`speed=1`), faster
(`speed=10`) or as fast as possible (`speed=0`). At the end of the recording the connection is closed
with code 4100 ("end of replay"), which connectors configured with `stop_at_replay_end` treat as EOF.

Venues that accept subscriptions on an open socket (`subscribable` + `control`, e.g. Binance `SUBSCRIBE`)
start a connection's replay at its first subscription and send only frames of streams subscribed so far.
Clock: `per_connection` (default) replays the recording from its start for every connection;
`shared` plays one timeline for everybody, like a live exchange: it starts with the first subscription
and a connection opened later (a reconnect, a rotation) joins it where it stands, so what a client sees
across two overlapping connections is exactly what it would see live.

`continuous=True` makes the venue behave like a live exchange instead: one replay position per stream
path that survives reconnects (a reconnecting client resumes where it was dropped, minus the frames it
missed), REST depth served from the venue's true book at that position, and with `loop=True` the
recording repeats forever (ids shifted per pass). A `FaultPlan` adds disconnects, stalls, bursts,
429/418 with Retry-After and per-IP bans (see `faults.py`); everything injected is counted in `stats`.
A continuous connection that subscribes on the open socket is keyed like the URL that names the same
streams (`/stream?streams=<sorted streams of its first SUBSCRIBE>`), so a reconnect that subscribes the
same streams resumes that position; streams it subscribes later are acknowledged but not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from cryptoflow.simulator.binance_spot import RecordedFrame, RestReply
from cryptoflow.simulator.fault_socket import BurstTempo, FaultySocket, SessionLog
from cryptoflow.simulator.faults import FaultInjector, FaultPlan, FrameFault

CONTROL_GRACE_S = 0.2  # how long a finished SUBSCRIBE session still answers control messages
log = logging.getLogger(__name__)

REPLAY_END_CODE = 4100
REPLAY_END_REASON = "end of replay"


class Venue(Protocol):
    """A replay venue serves fixed frames per URL (`frames_for`). An interactive venue (subscribe by
    message: Coinbase, Kraken, the synthetic mode) also has `async serve(ws, stats)`, which then owns
    the whole connection, and `frames_for` only says whether the path is a WebSocket endpoint."""

    name: str

    def frames_for(self, path: str) -> list[RecordedFrame] | None: ...
    def rest(self, path: str) -> RestReply | None: ...
    def with_live_books(self) -> Venue: ...
    def shift(self, frame: RecordedFrame, loop_pass: int) -> RecordedFrame: ...
    def observe(self, frame: RecordedFrame, loop_pass: int) -> None: ...


class SubscribableVenue(Venue, Protocol):
    def subscribable(self, path: str) -> list[RecordedFrame] | None: ...
    def control(self, text: str, subscribed: set[str]) -> str | None: ...


@dataclass
class SimulatorStats:
    """What the simulator has served; read by the demo for progress and by tests as ground truth."""

    connections_by_ip: Counter = field(default_factory=Counter)
    frames_planned: int = 0
    frames_sent: int = 0
    replays_finished: int = 0
    rest_requests: Counter = field(default_factory=Counter)
    ws_paths: Counter = field(default_factory=Counter)  # WebSocket connections per URL path
    rest_by_ip: Counter = field(default_factory=Counter)  # (ip, path) -> requests served or refused
    # ip -> the stream URLs it replayed (a SUBSCRIBE session as `<path>?streams=<sorted subscribed>`)
    streams_by_ip: dict[str, list[str]] = field(default_factory=dict)
    refused: Counter = field(default_factory=Counter)  # (ip, "ws"|"rest", status) -> requests refused
    faults: Counter = field(default_factory=Counter)  # disconnect/stall/burst/ban_drop -> injected
    frames_skipped: int = 0  # published while the subscriber was away (continuous mode)
    skipped: deque = field(default_factory=lambda: deque(maxlen=10_000))  # (path, frame text), latest
    open_connections: int = 0
    sessions: list[SessionLog] = field(default_factory=list)  # `serve` connections under a FaultPlan


@dataclass
class _Cursor:
    """A stream path's replay position in continuous mode."""

    index: int = 0
    loop_pass: int = 0


class ExchangeSimulator:
    def __init__(
        self,
        venue: Venue,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 0.0,
        clock: str = "per_connection",
        *,
        continuous: bool = False,
        loop: bool = False,
        faults: FaultPlan | None = None,
    ) -> None:
        if clock not in ("per_connection", "shared"):
            raise ValueError(f"clock must be per_connection or shared, not {clock!r}")
        if clock == "shared" and speed <= 0:
            raise ValueError("a shared clock needs a replay speed above 0")
        if clock == "shared" and continuous:
            raise ValueError("continuous mode already plays one live timeline; leave clock per_connection")
        self.venue, self.host, self.requested_port, self.speed = venue, host, port, speed
        self.clock = clock
        self._shared_start: float | None = None  # loop time at which the shared timeline started
        self.continuous, self.loop = continuous, loop
        if loop and not continuous:
            raise ValueError("loop=True needs continuous=True")
        if continuous:  # a private copy: the recorded venue may be shared by other simulators
            venue = venue.with_live_books()
            self.venue = venue
        self.faults = FaultInjector(faults) if faults is not None else None
        self._cursors: dict[str, _Cursor] = {}
        self._live: dict[ServerConnection, str] = {}  # open WebSocket -> peer ip
        self._dropped: set[ServerConnection] = set()
        self._keys: dict[ServerConnection, str] = {}  # open WebSocket -> its continuous cursor key
        self._sessions: dict[ServerConnection, SessionLog] = {}  # open `serve` WebSocket -> its log
        self._tempo = BurstTempo()  # burst faults speed up the feeds of `serve` venues
        self.port: int | None = None
        self.stats = SimulatorStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ExchangeSimulator:
        self._thread = threading.Thread(target=self._run, name=f"simulator-{self.venue.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("exchange simulator did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"exchange simulator failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ExchangeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def position(self, path: str) -> int:
        """Continuous mode: how many frames of `path` have been published (sent or skipped) so far."""
        cursor = self._cursors.get(path)
        frames = self.venue.frames_for(path) or []
        return 0 if cursor is None else cursor.loop_pass * len(frames) + cursor.index

    def drop_connections(self, ip: str, code: int = 1008, reason: str = "banned") -> None:
        """Close every open WebSocket from `ip` (what an exchange does when it bans an IP); thread-safe."""
        if self._loop is None:
            return

        def _drop() -> None:
            for ws, peer in list(self._live.items()):
                if peer == ip:
                    self.stats.faults["ban_drop"] += 1
                    self._dropped.add(ws)  # its handler must not publish another frame
                    session = self._sessions.get(ws)
                    if session is not None and session.ended_by is None:
                        session.ended_by = "ban_drop"
                    key = self._keys.get(ws)
                    if self.continuous and key is not None:  # the market moves on while it is locked out
                        frames = self.venue.frames_for(key) or []
                        self._skip(key, self._cursors.setdefault(key, _Cursor()), frames)
                    self._loop.create_task(ws.close(code, reason))

        self._loop.call_soon_threadsafe(_drop)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with serve(
            self._handle, self.host, self.requested_port, process_request=self._process_request,
            max_size=1 << 20, ping_interval=20, compression=None,
        ) as server:  # fmt: skip
            self.port = server.sockets[0].getsockname()[1]
            log.info("simulator %s listening on %s:%s", self.venue.name, self.host, self.port)
            self._ready.set()
            await self._stopped.wait()

    # ------------------------------------------------------------------ HTTP
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        ip = connection.remote_address[0] if connection.remote_address else "?"
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        kind = "ws" if is_ws else "rest"
        if not is_ws:
            self.stats.rest_by_ip[(ip, request.path.split("?", 1)[0])] += 1
        if self.faults is not None:
            refusal = self.faults.refuse(ip, kind)
            if refusal is not None:
                status, retry_after = refusal
                self.stats.refused[(ip, kind, status)] += 1
                body = b'{"code":-1003,"msg":"Way too many requests; IP banned or rate limited."}'
                headers = Headers(
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                     ("Retry-After", str(retry_after))]
                )  # fmt: skip
                phrase = "I'm a teapot" if status == 418 else HTTPStatus(status).phrase
                return Response(status, phrase, headers, body)
        if is_ws:
            if self.venue.frames_for(request.path) is None and self._subscribable(request.path) is None:
                return connection.respond(HTTPStatus.NOT_FOUND, "unknown stream path\n")
            return None
        reply = self.venue.rest(request.path)
        self.stats.rest_requests[request.path.split("?", 1)[0]] += 1
        if reply is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(reply.body)))])
        for name, value in reply.headers:
            headers[name] = value
        return Response(reply.status, HTTPStatus(reply.status).phrase, headers, reply.body)

    # ------------------------------------------------------------------ WebSocket replay
    def _subscribable(self, path: str) -> list[RecordedFrame] | None:
        method = getattr(self.venue, "subscribable", None)
        return method(path) if method is not None else None

    async def _handle(self, ws: ServerConnection) -> None:
        peer_ip = ws.remote_address[0] if ws.remote_address else "?"
        self.stats.connections_by_ip[peer_ip] += 1
        self.stats.ws_paths[ws.request.path.split("?", 1)[0]] += 1
        session = getattr(self.venue, "session", None)
        if session is not None:  # subscribe-message venues (Bybit, OKX) drive the connection themselves
            if self.faults is not None:
                if await self._serve_faulty(ws, peer_ip, lambda sock: session(sock, self.stats, self.speed)):
                    with contextlib.suppress(ConnectionClosed):
                        self.stats.replays_finished += 1
                        await ws.close(REPLAY_END_CODE, REPLAY_END_REASON)
                return
            try:
                await session(ws, self.stats, self.speed)
                self.stats.replays_finished += 1
                await ws.close(REPLAY_END_CODE, REPLAY_END_REASON)
            except ConnectionClosed:
                pass
            return
        serve = getattr(self.venue, "serve", None)
        if serve is not None:
            if self.faults is not None:
                await self._serve_faulty(ws, peer_ip, lambda sock: serve(sock, self.stats))
                return
            with contextlib.suppress(ConnectionClosed):
                await serve(ws, self.stats)
            return
        candidates = self._subscribable(ws.request.path)
        self._live[ws] = peer_ip
        self.stats.open_connections += 1
        try:
            if candidates is None:
                self.stats.streams_by_ip.setdefault(peer_ip, []).append(ws.request.path)
                if await self._serve(ws, ws.request.path, self.venue.frames_for(ws.request.path) or []):
                    return
            elif await self._session(ws, peer_ip, candidates):
                return
            self.stats.replays_finished += 1
            await ws.close(REPLAY_END_CODE, REPLAY_END_REASON)
        except ConnectionClosed:
            pass
        finally:
            self._live.pop(ws, None)
            self._keys.pop(ws, None)
            self._dropped.discard(ws)
            self.stats.open_connections -= 1

    async def _serve_faulty(self, ws: ServerConnection, peer_ip: str, serve) -> bool:
        """A `serve`/`session` venue's connection under the fault plan: its frames go through a
        `FaultySocket`, a ban drops it, and its `SessionLog` records what the client really received.
        True if the venue ended the connection's service itself (no fault, no ban, client still there)."""
        for feed in _feeds_of(self.venue):
            feed.tempo = self._tempo
        session = SessionLog(peer_ip, ws.request.path)
        self.stats.sessions.append(session)
        self._sessions[ws] = session
        self._live[ws] = peer_ip
        self.stats.open_connections += 1
        faulty = FaultySocket(
            ws, self.faults, self.stats, session, lambda: ws in self._dropped, self._tempo,
            getattr(self.venue, "frame_key", None),
        )  # fmt: skip
        ended = False
        try:
            with contextlib.suppress(ConnectionClosed):
                await serve(faulty)
                ended = not faulty.lost
            return ended
        finally:
            session.ended_by = session.ended_by or "closed"
            session.close_code = ws.close_code
            self._sessions.pop(ws, None)
            self._live.pop(ws, None)
            self._dropped.discard(ws)
            self.stats.open_connections -= 1

    async def _serve(
        self, ws: ServerConnection, key: str, frames: list[RecordedFrame], subscribed: set[str] | None = None
    ) -> bool:
        """Replay `frames` (per-connection or shared clock) or, in continuous mode, publish from the
        cursor of `key`; True if a fault closed the socket (no end-of-replay close then)."""
        if self.continuous:
            self._keys[ws] = key
            return await self._continue(ws, frames, key)
        if subscribed is None:
            self.stats.frames_planned += len(frames)
        await self._replay(ws, frames, subscribed)
        return False

    async def _continue(self, ws: ServerConnection, frames: list[RecordedFrame], key: str) -> bool:
        """Continuous mode: publish from the shared position of `key` (a stream URL); True if a fault
        closed the socket."""
        cursor = self._cursors.setdefault(key, _Cursor())
        loop = asyncio.get_running_loop()
        due, prev_ts, burst_left = loop.time(), None, 0
        while frames:
            if cursor.index >= len(frames):
                if not self.loop:
                    return False
                cursor.index, cursor.loop_pass = 0, cursor.loop_pass + 1
            frame = self.venue.shift(frames[cursor.index], cursor.loop_pass)
            raw_ts, position = frames[cursor.index].ts, (cursor.loop_pass, cursor.index)
            fault = self.faults.frame_fault() if self.faults is not None else None
            if fault is FrameFault.DISCONNECT:
                self.stats.faults["disconnect"] += 1
                self._skip(key, cursor, frames)
                await ws.close(1011, "injected disconnect")
                return True
            if fault is FrameFault.STALL:
                self.stats.faults["stall"] += 1
                await asyncio.sleep(self.faults.plan.stall_s)
                due = loop.time()
            elif fault is FrameFault.BURST:
                self.stats.faults["burst"] += 1
                burst_left = self.faults.plan.burst_frames
            if self.speed > 0 and prev_ts is not None:
                factor = self.faults.plan.burst_factor if burst_left > 0 else 1.0
                due += max(0.0, raw_ts - prev_ts) / self.speed / factor
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif cursor.index % 256 == 0:
                await asyncio.sleep(0)
            prev_ts, burst_left = raw_ts, max(0, burst_left - 1)
            if ws in self._dropped or ws.state is not State.OPEN:
                return True  # dropped while waiting: the frame stays for whoever connects next
            if (cursor.loop_pass, cursor.index) != position:
                continue  # the position moved while waiting (frames skipped): pace from there
            self.venue.observe(frame, cursor.loop_pass)  # the book moves as the frame goes out
            cursor.index += 1
            await ws.send(frame.text)
            self.stats.frames_sent += 1
        return False

    def _skip(self, path: str, cursor: _Cursor, frames: list[RecordedFrame]) -> None:
        """Frames published while a dropped client is away: the book moves on, the client never sees them."""
        for _ in range(self.faults.plan.skip_on_disconnect if self.faults else 0):
            if cursor.index >= len(frames):
                if not self.loop:
                    return
                cursor.index, cursor.loop_pass = 0, cursor.loop_pass + 1
            frame = self.venue.shift(frames[cursor.index], cursor.loop_pass)
            self.venue.observe(frame, cursor.loop_pass)
            cursor.index += 1
            self.stats.frames_skipped += 1
            self.stats.skipped.append((path, frame.text))

    async def _session(self, ws: ServerConnection, peer_ip: str, candidates: list[RecordedFrame]) -> bool:
        """Answer control messages; replay the subscribed streams from the first subscription on.
        True if a fault closed the socket."""
        subscribed: set[str] = set()
        first = asyncio.Event()

        async def read_controls() -> None:
            async for message in ws:
                reply = self.venue.control(
                    message if isinstance(message, str) else message.decode(), subscribed
                )  # type: ignore[attr-defined]
                if reply is not None:
                    await ws.send(reply)
                if subscribed:
                    first.set()

        reader = asyncio.get_running_loop().create_task(read_controls())
        try:
            waiter = asyncio.ensure_future(first.wait())
            await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not first.is_set():
                return False
            key = f"{ws.request.path.split('?', 1)[0]}?streams={'/'.join(sorted(subscribed))}"
            self.stats.streams_by_ip.setdefault(peer_ip, []).append(key)
            if self.continuous:
                ended = await self._serve(ws, key, self.venue.frames_for(key) or [])
            else:
                ended = await self._serve(ws, key, candidates, subscribed)
            if not ended:
                # Control messages sent right after the first SUBSCRIBE (LIST_SUBSCRIPTIONS) may still be
                # in flight when a fast replay ends: answer them before the end-of-replay close.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reader), CONTROL_GRACE_S)
            return ended
        finally:
            reader.cancel()

    async def _replay(
        self, ws: ServerConnection, frames: list[RecordedFrame], subscribed: set[str] | None = None
    ) -> None:
        if not frames:
            return
        if subscribed is not None:
            self.stats.frames_planned += sum(1 for f in frames if f.stream in subscribed)
        loop = asyncio.get_running_loop()
        start_wall, start_rec = loop.time(), frames[0].ts
        if self.clock == "shared":
            if self._shared_start is None:
                self._shared_start = start_wall
            start_wall = self._shared_start
            start_rec = min(start_rec, *(f.ts for f in getattr(self.venue, "frames", frames)[:1]))
        joined = loop.time()
        for i, frame in enumerate(frames):
            if subscribed is not None and frame.stream not in subscribed:
                continue
            if self.speed > 0:
                due = start_wall + (frame.ts - start_rec) / self.speed
                if self.clock == "shared" and due < joined:
                    continue  # happened before this connection joined the live timeline
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif i % 256 == 0:
                await asyncio.sleep(0)
            await ws.send(frame.text)
            self.stats.frames_sent += 1


def _feeds_of(venue: Venue) -> list:
    """The synthetic feeds a `serve` venue paces its frames with (Kraken v2: `feed`; Bybit/OKX: `feeds`)."""
    feed = getattr(venue, "feed", None)
    return [feed] if feed is not None else list(getattr(venue, "feeds", {}).values())
