"""A small base for one shard's WebSocket connection to one venue: thread + asyncio loop, connect with
a per-IP connect budget, subscribe, keepalive, idle watchdog, parse every frame with the venue's parser
(one parser per connection), hand `RawEvent`s to the shard's bounded queue, reconnect with jittered
back-off, and resubscribe books the engine says are broken.

Venue clients (`connectors/coinbase/client.py`, `connectors/kraken/client.py`) implement only the venue
part: `url`, `new_parser`, `subscribe`, `keepalive`, `resubscribe`, `map_event`. The journal / egress
hooks the lead adds later belong here, once for every venue: `_put` is the single output path, `_connect`
the single connect path (it already takes the shard's `local_addr`).

Resync decisions use the same pure engine the dataflow uses (`operators.book.tracker.BookTracker`, with
`emit=False`), fed with the same events, so the connector and the operator never disagree about when a
book is broken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from connectors.parse_errors import ParseError
from connectors.ratelimit import Budget
from connectors.signals import END
from cryptoflow import metrics
from cryptoflow.config import ConnectorConfig
from cryptoflow.model import Kind, RawEvent
from cryptoflow.observability import HEALTH
from operators.book.tracker import BookSettings, BookTracker

log = logging.getLogger(__name__)

REPLAY_END_CLOSE_CODE = 4100  # the CryptoFlow simulator closes with it when a replay is exhausted
BOOK_KINDS = (Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF, Kind.CONNECTION_GAP)


def now_us() -> int:
    return time.time_ns() // 1000


class WsClient:
    """Subclass per venue. `symbols` are exchange symbols; `book_scheme` (a tracker scheme) enables the
    engine-driven resync of book subscriptions."""

    exchange = "?"
    market = "spot"
    max_size = 64 * 1024 * 1024  # full-book snapshots (Coinbase BTC-USD ≈ 8 MB)
    book_scheme: str | None = None

    def __init__(
        self,
        connector: ConnectorConfig,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue,
        connect_budget: Budget,
        message_budget: Budget | None = None,
        idle_timeout_s: float = 60.0,
        local_addr: str | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("a client needs at least one symbol")
        self.connector, self.symbols, self.channels = connector, list(symbols), set(channels)
        self.shard, self.out, self.local_addr = shard, out, local_addr
        self.connect_budget, self.message_budget = connect_budget, message_budget
        self.idle_timeout_s = idle_timeout_s
        self.parser: Any = None
        self.trackers: dict[str, BookTracker] = {}
        self.resyncs = 0
        self.frames = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: ClientConnection | None = None
        self._pending_resync: set[str] = set()
        self.finished = threading.Event()
        self._health_name = f"{self.exchange}-shard-{shard}-{id(self)}"

    # ------------------------------------------------------------------ venue hooks
    def url(self) -> str:
        raise NotImplementedError

    def new_parser(self) -> Any:
        raise NotImplementedError

    async def prepare(self) -> None:
        """Before each connection (instrument refresh)."""

    async def subscribe(self, ws: ClientConnection) -> None:
        raise NotImplementedError

    async def keepalive(self, ws: ClientConnection) -> None:
        """Runs while connected; default: nothing (the venue pings us or heartbeats arrive)."""
        await asyncio.Event().wait()

    async def resubscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        """Get fresh book snapshots for `symbols` (unsubscribe + subscribe)."""
        raise NotImplementedError

    def map_event(self, event: RawEvent) -> RawEvent | None:
        """Normalize symbols from the instrument map; None drops the event (unknown symbol)."""
        return event

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.exchange}-{self.shard}", daemon=True)
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
            log.exception("%s client for shard %s crashed", self.exchange, self.shard)
        finally:
            self._put(END)
            self.finished.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        backoff = self.connector.reconnect_initial_s
        while not self._stop.is_set():
            try:
                await self.prepare()
                if await self._session():
                    return
                backoff = self.connector.reconnect_initial_s
                reason = "closed"
            except (TimeoutError, OSError, ConnectionClosed, websockets.InvalidHandshake) as exc:
                reason = type(exc).__name__
                log.warning("%s shard %s: connection lost (%s), reconnecting", self.exchange, self.shard, exc)
            metrics.RECONNECTS.labels(self.exchange, reason).inc()
            await self._sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.connector.reconnect_max_s)

    async def _session(self) -> bool:
        """One connection; True when the replay ended (or we were stopped) and the client should finish."""
        await self.connect_budget.acquire(self.exchange, "connect")
        kwargs: dict[str, Any] = {"max_size": self.max_size, "open_timeout": 10, "ping_interval": None}
        if self.local_addr:
            kwargs["local_addr"] = (self.local_addr, 0)
        self.parser = self.new_parser()  # connection state (Coinbase sequence_num) starts afresh
        if self.book_scheme is not None:
            settings = BookSettings(emit=False, stream="connector")
            self.trackers = {}
            self._settings = settings
        async with connect(self.url(), **kwargs) as ws:
            self._ws = ws
            HEALTH.connection(self._health_name, True)
            log.info("%s shard %s connected: %d symbols", self.exchange, self.shard, len(self.symbols))
            keepalive = asyncio.get_running_loop().create_task(self.keepalive(ws))
            try:
                await self.subscribe(ws)
                while not self._stop.is_set():
                    raw = await asyncio.wait_for(ws.recv(), self.idle_timeout_s)
                    self._on_frame(raw)
                    if self._pending_resync:
                        symbols = sorted(self._pending_resync)
                        self._pending_resync.clear()
                        self.resyncs += len(symbols)
                        await self.resubscribe(ws, symbols)
            except ConnectionClosed:
                pass
            finally:
                keepalive.cancel()
                self._ws = None
                HEALTH.connection(self._health_name, False)
        if self._stop.is_set():
            return True
        if ws.close_code == REPLAY_END_CLOSE_CODE and self.connector.stop_at_replay_end:
            log.info("%s shard %s: replay ended", self.exchange, self.shard)
            return True
        raise ConnectionError(f"server closed the connection ({ws.close_code} {ws.close_reason!r})")

    async def send(self, ws: ClientConnection, text: str) -> None:
        """Every outbound message goes through the venue's per-IP message budget."""
        if self.message_budget is not None:
            await self.message_budget.acquire(self.exchange, "message")
        await ws.send(text)

    # ------------------------------------------------------------------ frames
    def _on_frame(self, raw: str | bytes) -> None:
        ingest = now_us()
        self.frames += 1
        metrics.FRAMES.labels(self.exchange, self.market).inc()
        try:
            events = self.parser.parse(raw, ingest)
        except ParseError as exc:
            metrics.BAD_FRAMES.labels(self.exchange, exc.reason).inc()
            log.warning("%s shard %s: dropped frame: %s", self.exchange, self.shard, exc)
            return
        for event in events:
            event.shard = self.shard
            mapped = self.map_event(event)
            if mapped is None:
                metrics.UNKNOWN_SYMBOL.labels(self.exchange).inc()
                continue
            if self.book_scheme is not None and mapped.kind in BOOK_KINDS:
                self._track(mapped)
            self._put(mapped)

    def _track(self, event: RawEvent) -> None:
        tracker = self.trackers.get(event.exchange_symbol)
        if tracker is None:
            tracker = self.trackers[event.exchange_symbol] = BookTracker(self.book_scheme, self._settings)  # type: ignore[arg-type]
        step = tracker.on_event(event)
        if step.resync:
            reason = step.gaps[0].reason if step.gaps else "resync"
            metrics.RESYNCS.labels(self.exchange, reason).inc()
            log.warning(
                "%s %s: book broken (%s), resubscribing", self.exchange, event.exchange_symbol, reason
            )
            self._pending_resync.add(event.exchange_symbol)

    # ------------------------------------------------------------------ helpers
    def _put(self, item: RawEvent | object) -> None:
        """Backpressure policy `wait`: block this client's loop until the dataflow drains the queue."""
        while True:
            try:
                self.out.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stop.is_set():
                    return

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            await asyncio.sleep(min(0.1, end - time.monotonic()))
