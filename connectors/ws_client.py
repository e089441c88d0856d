"""Shared WebSocket plumbing for venue clients: paced control messages, and a connection that rotates
itself (before a venue's forced expiry, or when the venue announces a shutdown) with an overlapping
replacement, so the stream handed to the dataflow neither loses nor repeats a frame.

The venue-specific part is a `HandoverHandler`: it parses frames, emits the primary connection's events
and buffers the replacement's until `overlap_done()` says both connections have delivered a common
point on every stream; then the old connection is retired (its later frames are dropped) and the
buffered events are emitted through the handler's duplicate filter. This module is the one place where
connection-level hooks (egress address, journal of raw frames) can be added for every venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from cryptoflow import metrics

log = logging.getLogger(__name__)


class Pacer:
    """At most `rate` sends per second on one connection (venues disconnect clients that send faster)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.clock = clock
        self.next_at = 0.0

    def delay(self) -> float:
        """Seconds to wait before the next send; reserves that send's slot."""
        now = self.clock()
        at = max(now, self.next_at)
        self.next_at = at + self.interval
        return at - now

    async def wait(self) -> None:
        delay = self.delay()
        if delay > 0:
            await asyncio.sleep(delay)


class HandoverHandler(Protocol):
    def on_frame(self, raw: str | bytes, primary: bool) -> None:
        """A frame from the primary connection (emit it) or from the replacement (buffer it)."""

    def wants_rotation(self, raw: str | bytes) -> bool:
        """True if this frame announces that the venue will close the connection (e.g. serverShutdown)."""

    def overlap_done(self) -> bool:
        """True once the buffered replacement frames overlap what the primary already delivered."""

    def promote(self) -> None:
        """The replacement becomes primary: emit its buffered events (repeats are dropped)."""

    def abandon(self) -> None:
        """The replacement failed before taking over: forget its buffered events."""


# Called before every connect (the first one, reconnects made by the caller, rotation replacements):
# returns extra `connect()` keywords (e.g. `local_addr` for the shard's egress IP) and a `release`
# callback run once when that connection ends, with the exception if the connect itself failed (a 429
# on the handshake). The place for per-IP connection caps and connect budgets.
ConnectLease = tuple[dict[str, Any], Callable[[BaseException | None], None]]
Opener = Callable[[], Awaitable[ConnectLease]]


class ConnectionEnded(Exception):
    """The primary connection closed; `code`/`reason` as the server sent them."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"server closed the connection ({code} {reason!r})")
        self.code, self.reason = code, reason


class RotatingConnection:
    """One logical connection (URL + control messages) kept alive across planned rotations.

    `run()` returns when `stop` is set and raises `ConnectionEnded` (or a socket error) when the primary
    connection is lost; the caller reconnects with back-off (an unplanned loss is a real gap: the
    sequencers see it and the client resyncs).
    """

    def __init__(
        self,
        name: str,
        exchange: str,
        url: str,
        messages: list[str],
        handler: HandoverHandler,
        *,
        messages_per_s: float,
        rotate_after_s: float,
        overlap_max_s: float,
        stop: asyncio.Event,
        connect_kwargs: dict[str, Any] | None = None,
        on_state: Callable[[bool], None] | None = None,
        retry_rotation_s: float = 30.0,
        opener: Opener | None = None,
    ) -> None:
        self.name, self.exchange, self.url, self.messages = name, exchange, url, messages
        self.handler = handler
        self.messages_per_s = messages_per_s
        self.rotate_after_s, self.overlap_max_s = rotate_after_s, overlap_max_s
        self.stop = stop
        self.connect_kwargs = {"max_size": 64 * 1024 * 1024, "open_timeout": 10, "ping_interval": None}
        self.connect_kwargs.update(connect_kwargs or {})
        self.on_state = on_state or (lambda connected: None)
        self.retry_rotation_s = retry_rotation_s  # after a failed replacement, try again this soon
        self.opener = opener
        self._releases: dict[ClientConnection, Callable[[BaseException | None], None]] = {}
        self.primary: ClientConnection | None = None
        self.candidate: ClientConnection | None = None
        self.rotations = 0
        self._rotate_now = asyncio.Event()
        self._readers: dict[ClientConnection, asyncio.Task] = {}

    # --------------------------------------------------------------------------- connections
    async def _open(self) -> ClientConnection:
        extra, release = await self.opener() if self.opener is not None else ({}, None)
        try:
            ws = await connect(self.url, **{**self.connect_kwargs, **extra})
        except BaseException as exc:
            if release is not None:
                release(exc)
            raise
        if release is not None:
            self._releases[ws] = release
        self._readers[ws] = asyncio.get_running_loop().create_task(self._read(ws))
        pacer = Pacer(self.messages_per_s)
        try:
            for message in self.messages:
                await pacer.wait()
                await ws.send(message)
        except BaseException:
            await self._close(ws)
            raise
        return ws

    async def _read(self, ws: ClientConnection) -> None:
        try:
            await self._read_frames(ws)
        except ConnectionClosed:
            pass
        except Exception:  # a bug in frame handling: lose this connection (the caller reconnects), log it
            log.exception("%s: frame handling failed; dropping the connection", self.name)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _read_frames(self, ws: ClientConnection) -> None:
        async for raw in ws:
            if ws is self.primary:
                if self.handler.wants_rotation(raw):
                    log.info("%s: venue announced a shutdown; rotating the connection", self.name)
                    self._rotate_now.set()
                self.handler.on_frame(raw, True)
            elif ws is self.candidate:
                self.handler.on_frame(raw, False)
            # else: a retired connection; the replacement delivers the same frames

    async def _close(self, ws: ClientConnection | None) -> None:
        if ws is None:
            return
        with contextlib.suppress(Exception):
            await ws.close()
        release = self._releases.pop(ws, None)
        if release is not None:
            release(None)
        task = self._readers.pop(ws, None)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)

    # --------------------------------------------------------------------------- main loop
    async def run(self) -> None:
        try:
            self.primary = await self._open()
            self.on_state(True)
            rotate_in = self.rotate_after_s
            while True:
                ended = await self._wait_primary(time.monotonic() + rotate_in)
                if ended is not None:
                    raise ended
                if self.stop.is_set():
                    return
                rotated = await self._rotate()
                rotate_in = (
                    self.rotate_after_s if rotated else min(self.retry_rotation_s, self.rotate_after_s)
                )
        finally:
            self.on_state(False)
            await self._close(self.candidate)
            await self._close(self.primary)
            self.primary = self.candidate = None

    async def _wait_primary(self, rotate_at: float) -> ConnectionEnded | None:
        """Wait until the primary closes (returned), the rotation is due, or stop."""
        assert self.primary is not None
        reader = self._readers[self.primary]
        stop_wait = asyncio.ensure_future(self.stop.wait())
        rotate_wait = asyncio.ensure_future(self._rotate_now.wait())
        try:
            timeout = max(0.0, rotate_at - time.monotonic())
            await asyncio.wait({reader, stop_wait, rotate_wait}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            stop_wait.cancel()
            rotate_wait.cancel()
        if reader.done() and not self.stop.is_set():
            return ConnectionEnded(self.primary.close_code, self.primary.close_reason or "")
        return None

    async def _rotate(self) -> bool:
        """Open the replacement, let it overlap the primary, then hand over and retire the primary.
        False if the replacement failed (the primary stays; the caller retries soon)."""
        self._rotate_now.clear()
        metrics.RECONNECTS.labels(self.exchange, "rotation").inc()
        try:
            self.candidate = await self._open()
        except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
            log.warning("%s: replacement connection failed (%s); keeping the current one", self.name, exc)
            self.handler.abandon()
            self.candidate = None
            return False
        overlap_start = time.monotonic()
        deadline = overlap_start + self.overlap_max_s
        candidate_reader = self._readers[self.candidate]
        primary_reader = self._readers[self.primary]
        while time.monotonic() < deadline and not self.stop.is_set():
            if self.handler.overlap_done() or primary_reader.done():
                break
            if candidate_reader.done():
                log.warning("%s: replacement closed during the overlap; keeping the current one", self.name)
                self.handler.abandon()
                await self._close(self.candidate)
                self.candidate = None
                return False
            await asyncio.sleep(0.005)
        old, self.primary, self.candidate = self.primary, self.candidate, None
        self.handler.promote()
        self.rotations += 1
        log.info("%s: rotated to a new connection (rotation %d, %.3f s overlap)", self.name, self.rotations,
                 time.monotonic() - overlap_start)  # fmt: skip
        await self._close(old)
        return True
