"""Shared WebSocket plumbing for venue clients: paced control messages, and a connection that rotates
itself (before a venue's forced expiry, or when the venue announces a shutdown) with an overlapping
replacement, so the stream handed to the dataflow neither loses nor repeats a frame.

The venue-specific part is a `HandoverHandler`: it parses frames, emits the primary connection's events
and buffers the replacement's until `overlap_done()` says both connections have delivered a common
point on every stream; then the old connection is retired (its later frames are dropped) and the
buffered events are emitted through the handler's duplicate filter.

Reading: by default each socket is a `connectors.ws_fast.FastReadConnection`: complete, unfragmented,
uncompressed data frames are split from the received bytes by our own loop and handed to the handler
in batches straight from the socket's `data_received` (~1-2 µs per frame instead of websockets' 14-27
µs parse/assemble/recv); control frames, fragmented or compressed messages, and everything websockets
must judge (close, protocol errors) still take websockets' own path, in stream order. Text frames
arrive as `str`, binary as `bytes`, exactly as `recv()` returns them. `connector.ws_fast_read: false`
(`CRYPTOFLOW_CONNECTOR__WS_FAST_READ=false`; `RotatingConnection(fast_read=False)`) turns it off: every
frame is then read with `recv()`.

`WsClient` below is the one base of every venue client (Binance lanes, and through
`connectors.subscribe_client.SubscribeClient` Bybit, OKX, Coinbase and Kraken): thread life cycle,
egress lease of every socket and REST call, reconnect loop, queue or journal output. Clients run on the
process's one shared event loop (`connectors/client_loop.py`), run by the idle Bytewax worker itself
(`connector.client_loop: worker`, the default) or by its own thread (`shared`), or with `per_client` on a
thread and loop of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from connectors.client_io import put_all_until_stopped, put_until_stopped, sleep_unless_stopped
from connectors.client_loop import ClientLoop
from connectors.egress import EgressManager
from connectors.http import HttpError, http_get
from connectors.journal import JournalWriter, RecordKind
from connectors.retry import Backoff, CircuitBreaker
from connectors.signals import END, RUN_ID
from connectors.ws_fast import FastReadConnection
from cryptoflow import metrics
from cryptoflow.observability import HEALTH

log = logging.getLogger(__name__)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in the calling thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


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
    def on_frames(self, raws: list[str | bytes], primary: bool) -> None:
        """Frames (in arrival order) from the primary connection (emit them) or from the replacement
        (buffer them): everything the socket had buffered, handled as one batch."""

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


# At most this many frames per batch (bounds how long one batch holds the event loop), and websockets'
# `max_queue`: the messages a socket buffers before it stops reading (TCP then pushes back on the
# venue). Under load a read finds up to this many waiting; websockets' default of 16 caps batches at 16.
MAX_BATCH_FRAMES = 256


class _NoBuffer:
    def __len__(self) -> int:
        return 0


def _buffered_frames(ws: Any) -> Any:
    """The socket's queue of received, not yet read frames (`len()` of it), from websockets' message
    assembler (`recv_messages.frames`, websockets >= 14; not public API). Without it every batch is one
    frame: correct, only slower."""
    frames = getattr(getattr(ws, "recv_messages", None), "frames", None)
    return frames if frames is not None and hasattr(frames, "__len__") else _NoBuffer()


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
        fast_read: bool = True,
    ) -> None:
        self.name, self.exchange, self.url, self.messages = name, exchange, url, messages
        self.handler = handler
        self.messages_per_s = messages_per_s
        self.rotate_after_s, self.overlap_max_s = rotate_after_s, overlap_max_s
        self.stop = stop
        self.connect_kwargs = {"max_size": 64 * 1024 * 1024, "open_timeout": 10, "ping_interval": None,
                               "max_queue": MAX_BATCH_FRAMES}  # fmt: skip
        self.connect_kwargs.update(connect_kwargs or {})
        self.on_state = on_state or (lambda connected: None)
        self.retry_rotation_s = retry_rotation_s  # after a failed replacement, try again this soon
        self.opener = opener
        self.fast_read = fast_read
        if self.fast_read:
            self.connect_kwargs.setdefault(
                "create_connection", functools.partial(FastReadConnection, batch_max=MAX_BATCH_FRAMES)
            )
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
        if isinstance(ws, FastReadConnection):  # frames from here on skip recv(); earlier ones wait there
            ws.on_frames = functools.partial(self._deliver, ws)
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
        """Wait for a frame, then take every further message the socket already holds (no waiting) and
        hand them over as one batch: per-batch costs (counters, the hand-over) are paid once per read.
        With the fast read path this sees only the messages that took websockets' path (fragmented,
        compressed, or received before `on_frames` was set); its end is the connection's end."""
        buffered = _buffered_frames(ws)
        recv = ws.recv
        while True:
            batch = [await recv()]
            try:
                while buffered and len(batch) < MAX_BATCH_FRAMES:
                    batch.append(await recv())  # returns at once: the message is already queued
            except ConnectionClosed:
                self._dispatch(ws, batch)  # what arrived before the close is still delivered
                raise
            self._dispatch(ws, batch)

    def _deliver(self, ws: FastReadConnection, batch: list[str | bytes]) -> None:
        """The fast read path's hand-over (called from the socket's `data_received`): a failure in frame
        handling drops this connection as it does on the `recv()` path (the caller reconnects)."""
        if ws.discarding:  # an earlier batch of this read failed: the connection is closing
            return
        try:
            self._dispatch(ws, batch)
        except Exception:
            log.exception("%s: frame handling failed; dropping the connection", self.name)
            ws.discard_frames()

    def _dispatch(self, ws: ClientConnection, batch: list[str | bytes]) -> None:
        if ws is self.primary:
            wants_rotation = self.handler.wants_rotation
            if any(wants_rotation(raw) for raw in batch):
                log.info("%s: venue announced a shutdown; rotating the connection", self.name)
                self._rotate_now.set()
            self.handler.on_frames(batch, True)
        elif ws is self.candidate:
            self.handler.on_frames(batch, False)
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
# The one client base of every venue: a thread with its own asyncio loop per client, connections kept up
# by `RotatingConnection`s behind one reconnect loop, every socket and REST call bound to the shard's
# egress IP (`connectors.egress.EgressManager`: per-IP caps, reconnect pacing, 429/418 cool-down and
# move to the next IP), and one output: the dataflow's queue, or the shard's journal (`JournalWriter`),
# whose records a per-venue decoder turns into the same events after the journal.

REPLAY_END_CLOSE_CODE = 4100  # the CryptoFlow simulator closes with it when a replay is exhausted
NO_FORCED_EXPIRY_S = 10 * 365 * 86400.0  # venues that do not expire connections: never rotate
THROTTLE_STATUSES = (429, 418)  # 429 = slow down, 418 = IP banned (Binance); both may carry Retry-After
_client_numbers = itertools.count(1)


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class EgressState:
    """What one connection's last connect attempt used: its IP, and the wait a 429/418 on it asked for."""

    ip: str | None = None
    throttle_wait: float | None = None
    connected: bool = False  # the connection got up since the last failure: back-off starts afresh


class WsClient:
    """Base of every venue client: life cycle, egress, reconnects, REST, and the output (queue/journal).

    A subclass implements `_main` (which connections to keep, with `_keep_connected`) and how frames
    become events. `out` is a `queue.Queue` (events) or a `JournalWriter` (raw records: `journal`)."""

    exchange = "?"

    def __init__(
        self,
        connector: Any,
        shard: int,
        out: Any,
        *,
        local_addr: str | None = None,
        egress: EgressManager | None = None,
        label: str | None = None,
    ) -> None:
        self.connector, self.shard, self.out = connector, shard, out
        self.local_addr = local_addr
        # Egress decides the local address before every connect / REST call; a bare `local_addr`
        # becomes a one-shard override so a client can also run without a shared manager.
        self.egress = egress or EgressManager(overrides={shard: local_addr} if local_addr else None)
        # Journal mode: write what arrived instead of events; decoding happens after the journal.
        self.journal: JournalWriter | None = out if isinstance(out, JournalWriter) else None
        self.number = next(_client_numbers)
        self._label = label or f"{self.exchange}-shard-{shard}-{self.number}"
        self.ws_breaker = CircuitBreaker(f"{self._label}-ws", connector.breaker_failures,
                                         connector.breaker_reset_s)  # fmt: skip
        self.rest_breaker = CircuitBreaker(f"{self._label}-rest", connector.breaker_failures,
                                           connector.breaker_reset_s)  # fmt: skip
        self.connections = 0  # sockets opened (rotation replacements included)
        self.ip: str | None = None  # egress IP of the latest connection
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._stop_async: asyncio.Event | None = None
        self._thread: threading.Thread | None = None  # the client's own, or the shared loop's
        self._shared = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # `connector.client_loop: worker`: the shared loop, which the partition's worker runs while idle
        self.loop_driver: ClientLoop | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Run on the process's shared client loop (`connectors/client_loop.py`): run by the Bytewax
        worker while idle (`connector.client_loop: worker`, the default) or by its own thread (`shared`);
        or on a thread and loop of its own (`per_client`)."""
        mode = getattr(self.connector, "client_loop", "shared")
        if mode in ("shared", "worker"):
            shared = ClientLoop.shared(driven=mode == "worker")
            self.loop_driver = shared if shared.driven else None
            self._thread = shared.thread
            self._shared = True
            shared.submit(self, self._run_async())
            return
        self._thread = threading.Thread(target=self._run, name=self._label, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        loop, stop_async = self._loop, self._stop_async
        if loop is not None and stop_async is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already finished
                loop.call_soon_threadsafe(stop_async.set)
        if self._thread is None or (loop is not None and _running_loop() is loop):  # from its own loop
            return
        if self._shared:
            self.finished.wait(timeout)
        else:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._start_main())
        except Exception:  # never let a client thread die silently
            log.exception("%s crashed", self._label)
        finally:
            self._finish()

    async def _run_async(self) -> None:
        """`_run` on the shared loop: a crash ends this client only."""
        try:
            await self._start_main()
        except Exception:
            log.exception("%s crashed", self._label)
        finally:
            self._finish()

    def _finish(self) -> None:
        """The client's last word: END on its queue (or journal), then `finished`."""
        if self.journal is not None:
            self.journal.append(RecordKind.END, RUN_ID, b"", now_us())
            self.journal.sync()
        else:
            self._put(END)
        self.finished.set()

    async def _start_main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_async = asyncio.Event()
        if self._stop.is_set():
            self._stop_async.set()
            return
        await self._main()

    async def _main(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ connections
    async def _keep_connected(
        self,
        name: str,
        connect: Callable[[EgressState], Awaitable[RotatingConnection | None]],
        on_lost: Callable[[], None] | None = None,
        watch: Callable[[RotatingConnection], Awaitable[None]] | None = None,
    ) -> None:
        """Keep one logical connection up: `connect(state)` builds the next `RotatingConnection` (None:
        nothing to connect); its loss is retried with full-jitter backoff (never sooner than a 429's
        Retry-After) behind the client's WebSocket breaker. Returns on stop, or at a replay's end."""
        backoff = Backoff(self.connector.reconnect_initial_s, self.connector.reconnect_max_s)
        state = EgressState()
        while not self._stop.is_set():
            at_least = 0.0
            try:
                conn = await connect(state)
                if conn is None:
                    return
                helper = asyncio.get_running_loop().create_task(watch(conn)) if watch is not None else None
                try:
                    await conn.run()
                    return  # stopped
                finally:
                    if helper is not None:
                        helper.cancel()
            except ConnectionEnded as exc:
                if exc.code == REPLAY_END_CLOSE_CODE and self.connector.stop_at_replay_end:
                    log.info("%s: replay ended", name)
                    return
                reason = "closed"
                log.warning("%s: %s; reconnecting", name, exc)
            except InvalidStatus as exc:
                reason = f"http_{exc.response.status_code}"
                log.warning("%s: connect from %s refused with HTTP %s", name, state.ip,
                            exc.response.status_code)  # fmt: skip
                at_least = state.throttle_wait or 0.0
                self.ws_breaker.record_failure()
            except (TimeoutError, OSError, ConnectionClosed, InvalidHandshake) as exc:
                if self._replay_ended(exc):  # closed while the subscribe messages were still going out
                    log.info("%s: replay ended", name)
                    return
                reason = type(exc).__name__  # EgressExhausted (every IP full) is an OSError too
                log.warning("%s: connection lost (%s), reconnecting", name, exc)
                self.ws_breaker.record_failure()
            state.throttle_wait = None
            if state.connected:
                backoff.reset()
                state.connected = False
            metrics.RECONNECTS.labels(self.exchange, reason).inc()
            if on_lost is not None:
                on_lost()
            await self._sleep(max(backoff.next_delay(at_least), self.ws_breaker.retry_in()))
            if self._stop.is_set():
                return

    def _replay_ended(self, exc: BaseException) -> bool:
        rcvd = exc.rcvd if isinstance(exc, ConnectionClosed) else None
        return rcvd is not None and rcvd.code == REPLAY_END_CLOSE_CODE and self.connector.stop_at_replay_end

    def _connection(
        self,
        name: str,
        url: str,
        messages: list[str],
        handler: HandoverHandler,
        state: EgressState,
        *,
        messages_per_s: float,
        rotate_after_s: float = NO_FORCED_EXPIRY_S,
        overlap_max_s: float = 10.0,
    ) -> RotatingConnection:
        """A `RotatingConnection` whose every socket goes through the shard's egress lease."""

        def on_state(up: bool) -> None:
            HEALTH.connection(name, up)
            if up:
                state.connected = True
                log.info("%s connected from %s", name, state.ip or "the default route")
                self.ws_breaker.record_success()

        assert self._stop_async is not None
        return RotatingConnection(
            name, self.exchange, url, messages, handler, messages_per_s=messages_per_s,
            rotate_after_s=rotate_after_s, overlap_max_s=overlap_max_s, stop=self._stop_async,
            on_state=on_state, opener=lambda: self._lease(state),
            fast_read=getattr(self.connector, "ws_fast_read", True),
        )  # fmt: skip

    async def _before_connect(self, ip: str | None) -> None:
        """Venue connect budget per source IP (shared by every shard on that IP); after egress pacing."""

    async def _lease(self, state: EgressState) -> ConnectLease:
        """Before each socket: the shard's egress IP, its reconnect budget (shared by all shards on that
        IP), the venue's connect budget and a connection slot; the release reports a refused
        handshake's 429/418 (the IP cools down and the shard moves on after repeated ones)."""
        ip = self.egress.address_for(self.shard)
        await self._sleep(self.egress.connect_delay(ip))
        await self._before_connect(ip)
        ip = self.egress.open(self.shard)  # EgressExhausted when every IP is at its cap
        state.ip = self.ip = ip
        self.connections += 1

        def release(error: BaseException | None) -> None:
            self.egress.close(ip)
            if isinstance(error, InvalidStatus) and error.response.status_code in THROTTLE_STATUSES:
                retry_after = error.response.headers.get("Retry-After")
                state.throttle_wait = self._on_throttle(ip, error.response.status_code, retry_after)

        return ({"local_addr": (ip, 0)} if ip else {}), release

    def _on_throttle(self, ip: str | None, status: int, retry_after: str | float | None) -> float:
        """Report a 429/418 to egress; how long to wait before the next try (Retry-After if we stay)."""
        try:
            retry_s = float(retry_after) if retry_after is not None else None
        except ValueError:
            retry_s = None
        self.egress.report_throttle(ip, status, retry_s)
        next_ip = self.egress.address_for(self.shard)
        if next_ip != ip:
            return self.egress.cooling(next_ip)  # moved: a fresh IP needs no wait
        return max(retry_s or 0.0, self.egress.cooling(ip) if status == 418 else 0.0)

    # ------------------------------------------------------------------ REST
    def _rest_wait(self, status: int, retry_after_s: float | None) -> float:
        """The least wait after an HTTP error from the venue (beyond egress' Retry-After handling)."""
        return 0.0

    async def _get(self, url: str, what: str, timeout_s: float) -> bytes | None:
        """GET from the shard's egress IP with 429/418 reporting, full-jitter backoff and the REST
        breaker. Returns None only when the client is stopping; never retries faster than Retry-After."""
        backoff = Backoff(self.connector.reconnect_initial_s, self.connector.reconnect_max_s)
        while not self._stop.is_set():
            wait_open = self.rest_breaker.retry_in()
            if wait_open > 0 or not self.rest_breaker.allow():
                await self._sleep(max(wait_open, 0.1))
                continue
            ip = self.egress.address_for(self.shard)
            at_least = 0.0
            try:
                response = await asyncio.to_thread(http_get, url, timeout_s, ip)
                self.rest_breaker.record_success()
                return response.body
            except HttpError as exc:
                status = exc.response.status
                if status in THROTTLE_STATUSES:
                    at_least = self._on_throttle(ip, status, exc.response.retry_after_s)
                at_least = max(at_least, self._rest_wait(status, exc.response.retry_after_s))
                reason = f"http_{status}"
            except OSError as exc:
                reason = type(exc).__name__
            self.rest_breaker.record_failure()
            metrics.REST_RETRIES.labels(self.exchange, reason).inc()
            wait = backoff.next_delay(at_least)
            log.warning("%s %s via %s failed (%s); retrying in %.1fs", self._label, what, ip, reason, wait)
            await self._sleep(wait)
        return None

    # ------------------------------------------------------------------ output
    def _put(self, item: Any) -> None:
        """The one hand-over to the dataflow's queue (backpressure policy in `connectors.client_io`)."""
        put_until_stopped(self.out, item, self._stop)

    def _put_many(self, items: list[Any]) -> None:
        """A batch of events in one hand-over (same policies as `_put`, drops counted per item)."""
        if items:
            put_all_until_stopped(self.out, items, self._stop)

    async def _sleep(self, seconds: float) -> None:
        await sleep_unless_stopped(seconds, self._stop)
