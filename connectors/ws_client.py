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
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from connectors.client_io import put_until_stopped, sleep_unless_stopped
from connectors.http import HttpError, http_get
from connectors.parse_errors import ParseError
from connectors.signals import END
from cryptoflow import metrics
from cryptoflow.model import Kind, RawEvent
from cryptoflow.observability import HEALTH
from operators.book.tracker import BookSettings, BookTracker

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
    async def _open(self, primary: bool) -> ClientConnection:
        """Connect (through the egress `opener`: local address, per-IP budget) and send the control
        messages. The socket takes its role (primary / replacement) before the first message goes out:
        frames that arrive while later messages are still paced out (a snapshot answering the first
        subscribe) belong to it and must not be dropped as retired."""
        extra, release = await self.opener() if self.opener is not None else ({}, None)
        try:
            ws = await connect(self.url, **{**self.connect_kwargs, **extra})
        except BaseException as exc:
            if release is not None:
                release(exc)
            raise
        if release is not None:
            self._releases[ws] = release
        if primary:
            self.primary = ws
        else:
            self.candidate = ws
        self._readers[ws] = asyncio.get_running_loop().create_task(self._read(ws))
        pacer = Pacer(self.messages_per_s)
        try:
            for message in self.messages:
                await pacer.wait()
                await ws.send(message)
        except BaseException:
            if primary:
                self.primary = None
            else:
                self.candidate = None
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
            self.primary = await self._open(primary=True)
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
            self.candidate = await self._open(primary=False)
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


# ------------------------------------------------------------------------------------------------------
# Venue clients that subscribe by message and keep a connection open (Coinbase, Kraken v2): a thread with
# its own asyncio loop per connection, the connection itself a `RotatingConnection` (so the egress and
# journal hooks added there apply), plus what those venues need beyond Binance: per-IP connect/message
# budgets shared by every shard (`connectors.ratelimit`), a keepalive task, an idle watchdog, and
# resubscribing the books the engine says are broken.

REPLAY_END_CLOSE_CODE = 4100  # the CryptoFlow simulator closes with it when a replay is exhausted
NO_FORCED_EXPIRY_S = 10 * 365 * 86400.0  # Coinbase/Kraken do not expire connections: never rotate


def now_us() -> int:
    return time.time_ns() // 1000


class _PassThrough:
    """`HandoverHandler` for venues that never rotate: every frame of the primary goes to the client."""

    def __init__(self, client: WsClient) -> None:
        self.client = client

    def on_frame(self, raw: str | bytes, primary: bool) -> None:
        if primary:
            self.client._on_frame(raw)

    def wants_rotation(self, raw: str | bytes) -> bool:
        return False

    def overlap_done(self) -> bool:
        return True

    def promote(self) -> None:
        pass

    def abandon(self) -> None:
        pass


class WsClient:
    """Base of one connection's client. Subclasses implement `url`, `new_parser`, `subscribe_messages`,
    `resubscribe_messages`, and optionally `prepare` (instruments), `keepalive_message`, `map_event`.
    `book_scheme` (an `operators.book.tracker` scheme) makes the client run the dataflow's own book
    engine on its events to learn when a book is broken (Kraken's checksum)."""

    exchange = "?"
    market = "spot"
    book_scheme: str | None = None
    keepalive_s: float | None = None

    def __init__(
        self,
        connector: Any,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: Any,
        connect_budget: Any,
        message_budget: Any | None = None,
        idle_timeout_s: float = 60.0,
        messages_per_s: float = 5.0,
        local_addr: str | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("a client needs at least one symbol")
        self.connector, self.symbols, self.channels = connector, list(symbols), set(channels)
        self.shard, self.out, self.local_addr = shard, out, local_addr
        self.connect_budget, self.message_budget = connect_budget, message_budget
        self.idle_timeout_s, self.messages_per_s = idle_timeout_s, messages_per_s
        self.parser: Any = None
        self.trackers: dict[str, Any] = {}
        self.resyncs = 0
        self.frames = 0
        self.connection: RotatingConnection | None = None
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._stop_async: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_resync: set[str] = set()
        self._books: dict[str, tuple[str, str]] = {}  # books read on this connection: symbol, market
        self._last_frame = time.monotonic()
        self._label = f"{self.exchange}-shard-{shard}-{id(self) & 0xFFFF:04x}"

    # ------------------------------------------------------------------ venue hooks
    def url(self) -> str:
        raise NotImplementedError

    def new_parser(self) -> Any:
        raise NotImplementedError

    def subscribe_messages(self) -> list[str]:
        raise NotImplementedError

    def resubscribe_messages(self, symbols: list[str]) -> list[str]:
        """Messages that get fresh book snapshots for `symbols` (unsubscribe + subscribe)."""
        raise NotImplementedError

    def keepalive_message(self) -> str | None:
        return None

    async def prepare(self) -> None:
        """Before each connection (instrument refresh)."""

    def map_event(self, event: Any) -> Any | None:
        """Normalize the symbol from the instrument map; None drops the event (unknown symbol)."""
        return event

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._label, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        loop, stop_async = self._loop, self._stop_async
        if loop is not None and stop_async is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_async.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # never let a client thread die silently
            log.exception("%s crashed", self._label)
        finally:
            self._put(END)
            self.finished.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_async = asyncio.Event()
        backoff = self.connector.reconnect_initial_s
        while not self._stop.is_set():
            try:
                await self.prepare()
                messages = self.subscribe_messages()
                await self.connect_budget.acquire(self.exchange, "connect")
                if self.message_budget is not None:  # the subscribe messages count against the IP's budget
                    for _ in messages:
                        await self.message_budget.acquire(self.exchange, "message")
                self._reset_connection_state()
                kwargs = {"local_addr": (self.local_addr, 0)} if self.local_addr else {}
                conn = self.connection = RotatingConnection(
                    self._label, self.exchange, self.url(), messages, _PassThrough(self),
                    messages_per_s=self.messages_per_s, rotate_after_s=NO_FORCED_EXPIRY_S, overlap_max_s=1.0,
                    stop=self._stop_async, connect_kwargs=kwargs,
                    on_state=lambda up: HEALTH.connection(self._label, up),
                )  # fmt: skip
                helpers = [self._loop.create_task(self._watch(conn))]
                try:
                    await conn.run()
                    return  # stopped
                finally:
                    for task in helpers:
                        task.cancel()
            except ConnectionEnded as exc:
                if exc.code == REPLAY_END_CLOSE_CODE and self.connector.stop_at_replay_end:
                    log.info("%s: replay ended", self._label)
                    return
                reason = "closed"
                log.warning("%s: %s; reconnecting", self._label, exc)
                backoff = self.connector.reconnect_initial_s
            except (TimeoutError, OSError, ConnectionClosed, InvalidHandshake) as exc:
                reason = type(exc).__name__
                log.warning("%s: connection lost (%s), reconnecting", self._label, exc)
            metrics.RECONNECTS.labels(self.exchange, reason).inc()
            self._connection_lost()
            await self._sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.connector.reconnect_max_s)

    def _connection_lost(self) -> None:
        """Whatever the venue sent while we were away is lost: every book read on the connection is
        invalid until the new connection's snapshot (a `gaps` row with reason `connection` each)."""
        now = now_us()
        for exchange_symbol, (symbol, market) in sorted(self._books.items()):
            self._put(RawEvent(self.exchange, market, symbol, exchange_symbol, Kind.CONNECTION_GAP, None, now,
                               self.shard, -1, None))  # fmt: skip
        self._books.clear()

    def _reset_connection_state(self) -> None:
        self.parser = self.new_parser()  # connection state (Coinbase sequence_num) starts afresh
        self.trackers = {}
        self._pending_resync.clear()
        self._last_frame = time.monotonic()

    async def _watch(self, conn: RotatingConnection) -> None:
        """While connected: send resubscribes the engine asked for, keepalives, and close a silent
        connection after `idle_timeout_s` (the reconnect loop takes over)."""
        last_keepalive = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            ws = conn.primary
            if ws is None:
                continue
            now = time.monotonic()
            if self._pending_resync:
                symbols = sorted(self._pending_resync)
                self._pending_resync.clear()
                self.resyncs += len(symbols)
                for message in self.resubscribe_messages(symbols):
                    await self.send(ws, message)
            if self.keepalive_s is not None and now - last_keepalive >= self.keepalive_s:
                message = self.keepalive_message()
                if message is not None:
                    await self.send(ws, message)
                last_keepalive = now
            if now - self._last_frame > self.idle_timeout_s:
                log.warning("%s: no frame for %.0f s; reconnecting", self._label, self.idle_timeout_s)
                metrics.RECONNECTS.labels(self.exchange, "idle").inc()
                self._last_frame = now
                await ws.close()

    async def send(self, ws: ClientConnection, text: str) -> None:
        """Every message after the subscribe goes through the venue's per-IP message budget."""
        if self.message_budget is not None:
            await self.message_budget.acquire(self.exchange, "message")
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    # ------------------------------------------------------------------ frames
    def _on_frame(self, raw: str | bytes) -> None:
        ingest = now_us()
        self._last_frame = time.monotonic()
        self.frames += 1
        metrics.FRAMES.labels(self.exchange, self.market).inc()
        try:
            events = self.parser.parse(raw, ingest)
        except ParseError as exc:
            metrics.BAD_FRAMES.labels(self.exchange, exc.reason).inc()
            log.warning("%s: dropped frame: %s", self._label, exc)
            return
        for event in events:
            event.shard = self.shard
            mapped = self.map_event(event)
            if mapped is None:
                metrics.UNKNOWN_SYMBOL.labels(self.exchange).inc()
                continue
            self.emit(mapped, raw)

    def emit(self, event: Any, raw: str | bytes | None = None) -> None:
        """Hand one event to the dataflow. `raw` is the frame it came from: the place to journal exactly
        the frames the dataflow gets."""
        if event.kind in (Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF):
            self._books[event.exchange_symbol] = (event.symbol, event.market)
            if self.book_scheme is not None:
                self._track(event)
        self._put(event)

    def _track(self, event: Any) -> None:
        tracker = self.trackers.get(event.exchange_symbol)
        if tracker is None:
            settings = BookSettings(emit=False, stream="connector")
            tracker = self.trackers[event.exchange_symbol] = BookTracker(self.book_scheme, settings)  # type: ignore[arg-type]
        step = tracker.on_event(event)
        if step.resync:
            self.request_resync(event.exchange_symbol, step.gaps[0].reason if step.gaps else "resync")

    def request_resync(self, exchange_symbol: str, reason: str) -> None:
        if exchange_symbol in self._pending_resync:
            return
        metrics.RESYNCS.labels(self.exchange, reason).inc()
        log.warning("%s %s: book broken (%s), resubscribing", self._label, exchange_symbol, reason)
        self._pending_resync.add(exchange_symbol)

    async def _load_instruments(
        self,
        url: str,
        parse: Callable[[bytes], dict[str, str]],
        what: str,
        refresh_s: float,
        timeout_s: float,
    ) -> None:
        """(Re)load `self.instruments` (venue symbol -> BASE-QUOTE) from the venue's REST list when it is
        older than `refresh_s`; retries with backoff (Retry-After honoured) until it works or we stop."""
        loaded_at = getattr(self, "_instruments_at", 0.0)
        if self.instruments and time.monotonic() - loaded_at < refresh_s:
            return
        attempt = 0
        while not self._stop.is_set():
            try:
                response = await asyncio.to_thread(http_get, url, timeout_s, self.local_addr)
                self.instruments = parse(response.body)
                self._instruments_at = time.monotonic()
                missing = [s for s in self.symbols if s not in self.instruments]
                if missing:
                    log.error("%s does not list %s; their messages are dropped", what, missing)
                return
            except HttpError as exc:
                wait = exc.response.retry_after_s or min(2**attempt, 30)
                log.warning("%s: %s; retrying in %.1fs", what, exc, wait)
            except (OSError, ParseError) as exc:
                wait = min(2**attempt, 30)
                log.warning("%s failed (%s); retrying in %.1fs", what, exc, wait)
            attempt += 1
            await self._sleep(wait)

    # ------------------------------------------------------------------ helpers
    def _put(self, item: Any) -> None:
        """Backpressure policy `wait`: block this client's loop until the dataflow drains the queue."""
        put_until_stopped(self.out, item, self._stop)

    async def _sleep(self, seconds: float) -> None:
        await sleep_unless_stopped(seconds, self._stop)
