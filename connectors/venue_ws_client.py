"""Shared base of the subscribe-message WebSocket clients (Bybit v5, OKX v5): one connection each.

Why one base: every such venue needs the same life cycle (own thread and asyncio loop, instrument map
before the first subscribe, connect with jittered backoff, subscribe requests paced by the venue's
limits, an application-level keepalive, a read loop that parses and sequences frames on ids only, a
resync by unsubscribe + subscribe when the sequencer says gap, `CONNECTION_GAP` events for every book
when a connection is lost). Journal / egress hooks land here once for all venues: `_put` is the only
output path, `_connect_kwargs` and `http` the only network entry points.

A subclass says what is venue-specific: the topics, how to encode (un)subscribe requests and pings, how
to parse a frame and which book a parsed event continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Hashable

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from connectors.client_io import put_until_stopped, sleep_unless_stopped
from connectors.http import HttpError, HttpResponse, http_get
from connectors.parse_errors import ParseError
from connectors.signals import END
from cryptoflow import metrics
from cryptoflow.config import ConnectorConfig
from cryptoflow.model import Kind, RawEvent
from cryptoflow.observability import HEALTH

log = logging.getLogger(__name__)

REPLAY_END_CLOSE_CODE = 4100  # sent by the CryptoFlow simulator when a recording is exhausted

Topic = Hashable


def now_us() -> int:
    return time.time_ns() // 1000


class ConnectLimiter:
    """At most `rate` new connections per second per (venue, source IP), shared by every client
    thread of the process (exchange-protocols.md §7: share the connect budget across shards)."""

    _lock = threading.Lock()
    _last: dict[tuple[str, str | None], float] = {}

    @classmethod
    def delay(cls, exchange: str, ip: str | None, rate: float) -> float:
        """Reserve the next connect slot; returns how long to wait for it."""
        with cls._lock:
            now = time.monotonic()
            slot = max(now, cls._last.get((exchange, ip), 0.0) + 1.0 / rate)
            cls._last[(exchange, ip)] = slot
            return slot - now


class VenueWsClient(ABC):
    """One WebSocket connection to one venue URL for a fixed set of topics."""

    exchange: str = ""
    market_label: str = ""
    connects_per_s: float = 1.0  # the venue's connect budget per source IP
    ping_when_idle_only = False  # OKX: ping only after `ping_interval_s` without any inbound frame

    def __init__(
        self,
        connector: ConnectorConfig,
        url: str,
        shard: int,
        out: queue.Queue,
        *,
        ping_interval_s: float,
        pong_timeout_s: float,
        resync_timeout_s: float,
        http_timeout_s: float,
        local_addr: str | None = None,
    ) -> None:
        self.connector, self.url, self.shard, self.out = connector, url, shard, out
        self.ping_interval_s, self.pong_timeout_s = ping_interval_s, pong_timeout_s
        self.resync_timeout_s, self.http_timeout_s = resync_timeout_s, http_timeout_s
        self.local_addr = local_addr
        self.pending_resync: dict[Topic, float] = {}  # book topic -> when we resubscribed
        self.resubscribes = 0
        self.connections = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: ClientConnection | None = None
        self._last_rx = 0.0
        self._handover = False  # the venue announced a disconnect: move to a new socket first
        self.handover_timeout_s = 10.0
        self.finished = threading.Event()
        self._health_name = f"{self.exchange}-{self.market_label}-shard-{shard}-{id(self)}"

    # ------------------------------------------------------------------ venue hooks
    @abstractmethod
    async def load_instruments(self) -> None:
        """Fetch (or refresh) the instrument map; called before every connect."""

    @abstractmethod
    def topics(self) -> list[Topic]:
        """Everything this connection subscribes to."""

    @abstractmethod
    def subscribe_requests(self, topics: list[Topic], op: str = "subscribe") -> list[str]:
        """Encode (un)subscribe requests for `topics`, split to the venue's per-request limits."""

    @abstractmethod
    def ping_frame(self) -> str: ...

    @abstractmethod
    def parse(self, raw: str | bytes, ingest_us: int) -> list[RawEvent]: ...

    @abstractmethod
    def book_topic(self, event: RawEvent) -> Topic:
        """The subscription a book event belongs to (what a resync unsubscribes and resubscribes)."""

    @abstractmethod
    def gap(self, event: RawEvent) -> bool:
        """Run the venue's sequencing rule on the event's ids (connection-local state); True = gap."""

    @abstractmethod
    def reset_books(self) -> list[RawEvent]:
        """A connection ended: forget sequencing state; return a `CONNECTION_GAP` per book that was live."""

    def instruments_stale(self) -> bool:
        """True when the cached instrument map is due for its periodic refresh."""
        return False

    async def before_connect(self) -> None:
        """Venue connect-rate limit (per source IP, process-wide)."""
        wait = ConnectLimiter.delay(self.exchange, self.local_addr, self.connects_per_s)
        if wait > 0:
            await self._sleep(wait)

    def http_retry_s(self, status: int, retry_after_s: float | None, attempt: int) -> float:
        """How long to wait after an HTTP error: `Retry-After` when sent, else exponential."""
        return retry_after_s or min(2**attempt, 60)

    async def before_request(self) -> None:
        """Venue subscribe-op rate limits."""
        return None

    def after_frame(self) -> None:
        """Venue notices that announce a disconnect set `self._handover`."""
        return None

    def is_book_topic(self, topic: Topic) -> bool:
        """Whether `topic` is a book subscription (a handover waits for its snapshot)."""
        return False

    def snapshot_topic(self, raw: str | bytes) -> Topic | None:
        """The book topic of a snapshot frame, cheaply, without touching parser state; else None."""
        return None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        name = f"{self.exchange}-{self.market_label}-{self.shard}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        loop, ws = self._loop, self._ws
        if loop is not None and ws is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lambda: loop.create_task(ws.close()))
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # never let a client thread die silently
            log.exception("%s %s client for shard %s crashed", self.exchange, self.market_label, self.shard)
        finally:
            self._put(END)
            self.finished.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        backoff = self.connector.reconnect_initial_s
        while not self._stop.is_set():
            try:
                await self.load_instruments()
                if self._stop.is_set():
                    return
                if not self.topics():
                    # e.g. OKX funding on a shard holding only spot instruments: no connection at all
                    # (an idle subscription-less socket would be closed by the venue after 30 s anyway)
                    log.info("%s %s shard %s: none of its instruments offers these channels; not connecting",
                             self.exchange, self.market_label, self.shard)  # fmt: skip
                    return
                await self.before_connect()
                ended = await self._session()
                if ended:
                    return
                backoff = self.connector.reconnect_initial_s
                reason = "closed"
            except (TimeoutError, OSError, ConnectionClosed, websockets.InvalidHandshake) as exc:
                reason = type(exc).__name__
                log.warning("%s %s shard %s: connection lost (%s), reconnecting", self.exchange,
                            self.market_label, self.shard, exc)  # fmt: skip
            for event in self.reset_books():
                self._put(event)
            metrics.RECONNECTS.labels(self.exchange, reason).inc()
            await self._sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.connector.reconnect_max_s)

    def _connect_kwargs(self) -> dict:
        kwargs = {"max_size": 64 * 1024 * 1024, "open_timeout": 10, "ping_interval": None}
        if self.local_addr:
            kwargs["local_addr"] = (self.local_addr, 0)
        return kwargs

    async def _open(self) -> ClientConnection:
        """Connect and subscribe everything; the connection counts as up from here."""
        ws = await connect(self.url, **self._connect_kwargs())
        self.connections += 1
        try:
            await self._send_requests(ws, self.subscribe_requests(self.topics()))
        except BaseException:
            await ws.close()
            raise
        log.info("%s %s shard %s connected: %d topics", self.exchange, self.market_label, self.shard,
                 len(self.topics()))  # fmt: skip
        return ws

    async def _session(self) -> bool:
        """One logical connection (several sockets across handovers); True when the replay ended and
        the client should finish."""
        ws = await self._open()
        keepalive: asyncio.Task | None = None
        try:
            while True:
                self._ws, self._last_rx = ws, time.monotonic()
                HEALTH.connection(self._health_name, True)
                keepalive = asyncio.get_running_loop().create_task(self._keepalive(ws))
                try:
                    async for raw in ws:
                        self._last_rx = time.monotonic()
                        self._on_frame(raw)
                        if self._handover:
                            break
                except ConnectionClosed:
                    pass
                keepalive.cancel()
                if not self._handover or self._stop.is_set():
                    break
                self._handover = False
                ws = await self._hand_over(ws)
        finally:
            if keepalive is not None:
                keepalive.cancel()
            self._ws = None
            HEALTH.connection(self._health_name, False)
            await ws.close()
        if self._stop.is_set():
            return True
        if ws.close_code == REPLAY_END_CLOSE_CODE and self.connector.stop_at_replay_end:
            log.info("%s %s shard %s: replay ended", self.exchange, self.market_label, self.shard)
            return True
        raise ConnectionError(f"server closed the connection ({ws.close_code} {ws.close_reason!r})")

    async def _hand_over(self, old: ClientConnection) -> ClientConnection:
        """The exchange announced a disconnect: open a successor and subscribe it while the old socket
        keeps feeding the stream; once the successor holds a snapshot of every book (or after
        `handover_timeout_s`), close the old socket and continue on the successor from its first frame.
        The books restart from the successor's snapshots (a snapshot replaces the book, and the
        venue's ids are the same on every connection), so nothing is lost and no gap is declared;
        trades seen on both sockets during the overlap are dropped downstream by trade id."""
        await self.before_connect()
        new = await self._open()
        buffered: list[str | bytes] = []
        books = {t for t in self.topics() if self.is_book_topic(t)}
        seen: set[Topic] = set()

        async def fill() -> None:
            async for raw in new:
                buffered.append(raw)
                topic = self.snapshot_topic(raw)
                if topic is not None:
                    seen.add(topic)

        filler = asyncio.get_running_loop().create_task(fill())
        deadline = time.monotonic() + self.handover_timeout_s
        old_open = True
        while not books <= seen and time.monotonic() < deadline and not filler.done():
            if not old_open:
                await asyncio.sleep(0.01)
                continue
            try:
                raw = await asyncio.wait_for(old.recv(), timeout=0.05)
            except TimeoutError:
                continue
            except ConnectionClosed:
                old_open = False
                continue
            self._last_rx = time.monotonic()
            self._on_frame(raw)
        filler.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await filler
        await old.close(1000, "handover to a new connection")
        log.info("%s %s shard %s: handed over to a new connection (%d/%d books ready)", self.exchange,
                 self.market_label, self.shard, len(seen & books), len(books))  # fmt: skip
        metrics.RECONNECTS.labels(self.exchange, "handover").inc()
        self.reset_books()  # no CONNECTION_GAP: the successor's snapshots continue every book
        for raw in buffered:
            self._on_frame(raw)
        return new

    async def _send_requests(self, ws: ClientConnection, requests: list[str]) -> None:
        for request in requests:
            await self.before_request()
            await ws.send(request)

    async def _keepalive(self, ws: ClientConnection) -> None:
        """Application ping every `ping_interval_s` (or, with `ping_when_idle_only`, after that long
        without an inbound frame). Any frame received after a ping proves the socket alive; none within
        `pong_timeout_s` means a dead socket: close it (the main loop reconnects). The same timer
        re-asks resyncs that got no snapshot and refreshes the instrument map."""
        tick = min(self.ping_interval_s, self.pong_timeout_s) / 2
        next_ping = time.monotonic() + self.ping_interval_s
        ping_sent: float | None = None
        refresh: asyncio.Task | None = None
        try:
            while True:
                await asyncio.sleep(tick)
                now = time.monotonic()
                if ping_sent is not None and self._last_rx >= ping_sent:
                    ping_sent = None
                if ping_sent is not None and now - ping_sent > self.pong_timeout_s:
                    log.warning("%s %s shard %s: no pong within %.1fs, reconnecting", self.exchange,
                                self.market_label, self.shard, self.pong_timeout_s)  # fmt: skip
                    metrics.BAD_FRAMES.labels(self.exchange, "pong_timeout").inc()
                    await ws.close(1011, "pong timeout")
                    return
                if self.ping_when_idle_only:  # the timer is re-armed by every inbound frame
                    next_ping = max(next_ping, self._last_rx + self.ping_interval_s)
                if now >= next_ping:
                    await ws.send(self.ping_frame())
                    ping_sent = ping_sent or now
                    next_ping = now + self.ping_interval_s
                if self.instruments_stale() and (refresh is None or refresh.done()):
                    refresh = asyncio.get_running_loop().create_task(self.load_instruments())
                for topic, asked in list(self.pending_resync.items()):
                    if now - asked > self.resync_timeout_s:
                        self.pending_resync.pop(topic, None)
                        self.resubscribe(topic, "resync_timeout")
        except (ConnectionClosed, asyncio.CancelledError):
            return

    # ------------------------------------------------------------------ frames
    def _on_frame(self, raw: str | bytes) -> None:
        ingest = now_us()
        metrics.FRAMES.labels(self.exchange, self.market_label).inc()
        try:
            events = self.parse(raw, ingest)
        except ParseError as exc:
            metrics.BAD_FRAMES.labels(self.exchange, exc.reason).inc()
            if exc.reason == "unknown_symbol":
                metrics.UNKNOWN_SYMBOL.labels(self.exchange).inc()
            log.warning(
                "%s %s shard %s: dropped frame: %s", self.exchange, self.market_label, self.shard, exc
            )
            return
        self.after_frame()
        for event in events:
            if event.kind is Kind.DEPTH_SNAPSHOT:
                self.pending_resync.pop(self.book_topic(event), None)
                self.gap(event)
            elif event.kind is Kind.DEPTH_DIFF and self.gap(event):
                self.resubscribe(self.book_topic(event), "gap")
            self._put(event)

    def resubscribe(self, topic: Topic, reason: str) -> None:
        """Resync one book: unsubscribe then subscribe again; the venue answers with a fresh snapshot."""
        if topic in self.pending_resync or self._ws is None or self._loop is None:
            return
        self.pending_resync[topic] = time.monotonic()
        self.resubscribes += 1
        metrics.RESYNCS.labels(self.exchange, reason).inc()
        log.warning("%s %s shard %s: resync %s (%s): unsubscribe + subscribe", self.exchange,
                    self.market_label, self.shard, topic, reason)  # fmt: skip
        requests = self.subscribe_requests([topic], "unsubscribe") + self.subscribe_requests([topic])
        ws = self._ws
        self._loop.create_task(self._send_quietly(ws, requests))

    async def _send_quietly(self, ws: ClientConnection, requests: list[str]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._send_requests(ws, requests)

    # ------------------------------------------------------------------ helpers
    async def http(self, url: str) -> HttpResponse:
        """GET with retries (Retry-After honoured) until it works or the client stops."""
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(http_get, url, self.http_timeout_s, self.local_addr)
            except HttpError as exc:
                wait = self.http_retry_s(exc.response.status, exc.response.retry_after_s, attempt)
                log.warning("%s %s: %s; retrying in %.1fs", self.exchange, url, exc, wait)
            except OSError as exc:
                wait = min(2**attempt, 30)
                log.warning("%s %s failed (%s); retrying in %.1fs", self.exchange, url, exc, wait)
            attempt += 1
            await self._sleep(wait)
            if self._stop.is_set():
                raise ConnectionError("client stopped")

    def _put(self, item: RawEvent | object) -> None:
        """Backpressure policy `wait`: block this client's loop until the dataflow drains the queue."""
        put_until_stopped(self.out, item, self._stop)

    async def _sleep(self, seconds: float) -> None:
        await sleep_unless_stopped(seconds, self._stop)


def chunk_by_budget(items: list[str], max_items: int, max_chars: int | None = None) -> list[list[str]]:
    """Split `items` into consecutive groups of at most `max_items` and at most `max_chars` in total."""
    groups: list[list[str]] = []
    current: list[str] = []
    chars = 0
    for item in items:
        if current and (
            len(current) >= max_items or (max_chars is not None and chars + len(item) > max_chars)
        ):
            groups.append(current)
            current, chars = [], 0
        current.append(item)
        chars += len(item)
    if current:
        groups.append(current)
    return groups
