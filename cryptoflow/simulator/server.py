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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from cryptoflow.simulator.binance_spot import RecordedFrame, RestReply

CONTROL_GRACE_S = 0.2  # how long a finished SUBSCRIBE session still answers control messages
log = logging.getLogger(__name__)

REPLAY_END_CODE = 4100
REPLAY_END_REASON = "end of replay"


class Venue(Protocol):
    name: str

    def frames_for(self, path: str) -> list[RecordedFrame] | None: ...
    def rest(self, path: str) -> RestReply | None: ...


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


class ExchangeSimulator:
    def __init__(
        self,
        venue: Venue,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 0.0,
        clock: str = "per_connection",
    ) -> None:
        if clock not in ("per_connection", "shared"):
            raise ValueError(f"clock must be per_connection or shared, not {clock!r}")
        if clock == "shared" and speed <= 0:
            raise ValueError("a shared clock needs a replay speed above 0")
        self.venue, self.host, self.requested_port, self.speed = venue, host, port, speed
        self.clock = clock
        self._shared_start: float | None = None  # loop time at which the shared timeline started
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
            max_size=1 << 20, ping_interval=20,
        ) as server:  # fmt: skip
            self.port = server.sockets[0].getsockname()[1]
            log.info("simulator %s listening on %s:%s", self.venue.name, self.host, self.port)
            self._ready.set()
            await self._stopped.wait()

    # ------------------------------------------------------------------ HTTP
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
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
        frames = self.venue.frames_for(ws.request.path) or []
        candidates = self._subscribable(ws.request.path)
        try:
            if candidates is None:
                self.stats.frames_planned += len(frames)
                await self._replay(ws, frames)
            else:
                await self._session(ws, candidates)
            self.stats.replays_finished += 1
            await ws.close(REPLAY_END_CODE, REPLAY_END_REASON)
        except ConnectionClosed:
            pass

    async def _session(self, ws: ServerConnection, candidates: list[RecordedFrame]) -> None:
        """Answer control messages; replay the subscribed streams from the first subscription on."""
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
                return
            await self._replay(ws, candidates, subscribed)
            # Control messages sent right after the first SUBSCRIBE (LIST_SUBSCRIPTIONS) may still be
            # in flight when a fast replay ends: answer them before the end-of-replay close.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), CONTROL_GRACE_S)
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
