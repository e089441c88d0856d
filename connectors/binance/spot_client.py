"""Binance spot WebSocket client for one shard: subscribe, read, fetch REST snapshots, resync.

Runs in its own thread with its own asyncio loop and hands parsed `RawEvent`s to a bounded queue, so
Bytewax's `next_batch` never blocks on the network. It injects REST snapshots into the same ordered
stream; whether the stream is consistent is decided downstream by the same pure sequencing rules
(`operators.sequencing`), which the client also runs (ids only) to know when to fetch a new snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from connectors.binance.parsing import (
    EXCHANGE,
    Instrument,
    ParseError,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_ws_frame,
)
from connectors.http import HttpError, http_get
from connectors.journal import JournalWriter, RecordKind
from connectors.signals import END, RUN_ID
from cryptoflow import metrics
from cryptoflow.config import BinanceSpotConfig, ConnectorConfig
from cryptoflow.model import Kind, Market, RawEvent
from cryptoflow.observability import HEALTH
from operators.sequencing.binance import spot_verdict
from operators.sequencing.sync import DiffSync, Outcome

log = logging.getLogger(__name__)

REPLAY_END_CLOSE_CODE = 4100  # sent by the CryptoFlow simulator when a recording is exhausted


CHANNEL_DEPTH = "depth"
CHANNEL_TRADES = "trades"
CHANNEL_BOOK_TICKER = "bookTicker"  # best bid/ask with its update id: the book cross-check


def now_us() -> int:
    return time.time_ns() // 1000


class BinanceSpotClient:
    """One shard's connection(s) to Binance spot for the given symbols and channels."""

    def __init__(
        self,
        cfg: BinanceSpotConfig,
        connector: ConnectorConfig,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue | JournalWriter,
        local_addr: str | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("a client needs at least one symbol")
        self.cfg, self.connector = cfg, connector
        self.symbols, self.channels, self.shard = symbols, channels, shard
        self.out, self.local_addr = out, local_addr
        # Journal mode: write what arrived, parse only to decide resyncs; decoding happens downstream.
        self.journal = out if isinstance(out, JournalWriter) else None
        self._conn_id = 0
        self._conn_meta = ""
        self._frames_total = metrics.FRAMES.labels(EXCHANGE, Market.SPOT)
        self.instruments: dict[str, Instrument] = {}
        self.syncs: dict[str, DiffSync] = {}
        self._snapshot_tasks: dict[str, asyncio.Task] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: ClientConnection | None = None
        self.finished = threading.Event()
        self._health_name = f"binance-spot-shard-{shard}-{id(self)}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"binance-spot-{self.shard}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        loop, ws = self._loop, self._ws
        if loop is not None and ws is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already finished
                loop.call_soon_threadsafe(lambda: loop.create_task(ws.close()))
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # never let a client thread die silently
            log.exception("binance spot client for shard %s crashed", self.shard)
        finally:
            if self.journal is not None:
                self.journal.append(RecordKind.END, RUN_ID, b"", now_us())
                self.journal.sync()
            else:
                self._put(END)
            self.finished.set()

    # ------------------------------------------------------------------ stream names
    def stream_names(self) -> list[str]:
        names = []
        for symbol in self.symbols:
            lower = symbol.lower()
            if CHANNEL_DEPTH in self.channels:
                names.append(f"{lower}@{self.cfg.depth_stream}")
            if CHANNEL_TRADES in self.channels:
                names.append(f"{lower}@{self.cfg.trade_stream}")
            if CHANNEL_BOOK_TICKER in self.channels:
                names.append(f"{lower}@bookTicker")
        if len(names) > self.cfg.max_streams_per_connection:
            raise ValueError(
                f"shard {self.shard} needs {len(names)} streams, above "
                f"max_streams_per_connection={self.cfg.max_streams_per_connection}; raise total_shards"
            )
        return names

    def ws_url(self) -> str:
        return f"{self.cfg.ws_url}/stream?streams={'/'.join(self.stream_names())}"

    # ------------------------------------------------------------------ main loop
    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._load_instruments()
        self.syncs = {s: DiffSync(spot_verdict) for s in self.symbols}
        backoff = self.connector.reconnect_initial_s
        while not self._stop.is_set():
            try:
                ended = await self._session()
                if ended:
                    return
                backoff = self.connector.reconnect_initial_s
                reason = "closed"
            except (TimeoutError, OSError, ConnectionClosed, websockets.InvalidHandshake) as exc:
                reason = type(exc).__name__
                log.warning("binance spot shard %s: connection lost (%s), reconnecting", self.shard, exc)
            metrics.RECONNECTS.labels(EXCHANGE, reason).inc()
            await self._sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.connector.reconnect_max_s)

    async def _session(self) -> bool:
        """One connection; returns True when the replay ended and the client should finish."""
        kwargs = {"max_size": 64 * 1024 * 1024, "open_timeout": 10, "ping_interval": None}
        if self.local_addr:
            kwargs["local_addr"] = (self.local_addr, 0)
        async with connect(self.ws_url(), **kwargs) as ws:
            log.info("binance spot shard %s connected: %d streams", self.shard, len(self.stream_names()))
            self._ws = ws
            self._conn_id += 1
            self._conn_meta = f"{RUN_ID[:8]}-{self._conn_id}"
            HEALTH.connection(self._health_name, True)
            try:
                async for raw in ws:
                    self._on_frame(raw)
            except ConnectionClosed:
                pass
            finally:
                self._ws = None
                HEALTH.connection(self._health_name, False)
        if self._stop.is_set():
            return True
        if ws.close_code == REPLAY_END_CLOSE_CODE and self.connector.stop_at_replay_end:
            await self._drain_snapshot_tasks()
            log.info("binance spot shard %s: replay ended", self.shard)
            return True
        raise ConnectionError(f"server closed the connection ({ws.close_code} {ws.close_reason!r})")

    def _on_frame(self, raw: str | bytes) -> None:
        ingest = now_us()
        self._frames_total.inc()
        if self.journal is not None:
            self.journal.append(RecordKind.WS_FRAME, self._conn_meta, raw, ingest)
        try:
            event = parse_ws_frame(raw, self.instruments, self.shard, ingest)
        except ParseError as exc:
            if self.journal is not None:
                return  # counted and logged by the decoder after the journal

            metrics.BAD_FRAMES.labels(EXCHANGE, exc.reason).inc()
            if exc.reason == "unknown_symbol":
                metrics.UNKNOWN_SYMBOL.labels(EXCHANGE).inc()
            log.warning("binance spot shard %s: dropped frame: %s", self.shard, exc)
            return
        if event is None:
            return
        if event.kind is Kind.DEPTH_DIFF:
            sync = self.syncs.get(event.exchange_symbol)
            if sync is not None:
                step = sync.on_diff(None, event.first_seq, event.seq, event.prev_seq)
                if step.outcome in (Outcome.GAP, Outcome.SNAPSHOT_TOO_OLD, Outcome.BUFFERED):
                    self._request_snapshot(event.exchange_symbol, step.outcome.value)
        if self.journal is None:
            self._put(event)

    # ------------------------------------------------------------------ snapshots
    def _request_snapshot(self, exchange_symbol: str, reason: str, delay_s: float = 0.0) -> None:
        task = self._snapshot_tasks.get(exchange_symbol)
        if task is not None and not task.done():
            return
        if reason != Outcome.BUFFERED.value:
            metrics.RESYNCS.labels(EXCHANGE, reason).inc()
            log.warning("binance spot %s: resync (%s)", exchange_symbol, reason)
        self._snapshot_tasks[exchange_symbol] = asyncio.get_running_loop().create_task(
            self._fetch_snapshot(exchange_symbol, delay_s)
        )

    async def _fetch_snapshot(self, exchange_symbol: str, delay_s: float) -> None:
        if delay_s:
            await self._sleep(delay_s)
        query = urlencode({"symbol": exchange_symbol, "limit": self.cfg.snapshot_limit})
        url = f"{self.cfg.rest_url}/api/v3/depth?{query}"
        attempt = 0
        while not self._stop.is_set():
            try:
                response = await asyncio.to_thread(http_get, url, self.cfg.http_timeout_s, self.local_addr)
                break
            except HttpError as exc:
                wait = exc.response.retry_after_s or min(2**attempt, 60)
                log.warning("binance spot snapshot %s: %s; retrying in %.1fs", exchange_symbol, exc, wait)
            except OSError as exc:
                wait = min(2**attempt, 30)
                log.warning(
                    "binance spot snapshot %s failed (%s); retrying in %.1fs", exchange_symbol, exc, wait
                )
            attempt += 1
            await self._sleep(wait)
        else:
            return
        inst = self.instruments[exchange_symbol]
        ingest = now_us()
        if self.journal is not None:
            self.journal.append(RecordKind.REST_SNAPSHOT, exchange_symbol, response.body, ingest)
        try:
            event = parse_depth_snapshot(response.body, inst, self.shard, ingest)
        except ParseError as exc:
            if self.journal is None:
                metrics.BAD_FRAMES.labels(EXCHANGE, exc.reason).inc()
            log.warning("binance spot snapshot %s unusable: %s", exchange_symbol, exc)
            self._snapshot_tasks.pop(exchange_symbol, None)
            self._request_snapshot(exchange_symbol, "bad_snapshot", delay_s=1.0)
            return
        # Record the snapshot in the client's own sync and in the stream at the same point.
        step = self.syncs[exchange_symbol].on_snapshot(None, event.seq)
        if self.journal is None:
            self._put(event)
        if step.outcome is Outcome.SNAPSHOT_TOO_OLD:
            self._snapshot_tasks.pop(exchange_symbol, None)
            self._request_snapshot(exchange_symbol, "snapshot_too_old", delay_s=min(2**attempt, 5))

    async def _drain_snapshot_tasks(self) -> None:
        while True:
            pending = [t for t in self._snapshot_tasks.values() if not t.done()]
            if not pending:
                return
            await asyncio.wait(pending, timeout=30)

    async def _load_instruments(self) -> None:
        query = urlencode({"symbols": "[" + ",".join(f'"{s}"' for s in self.symbols) + "]"})
        url = f"{self.cfg.rest_url}/api/v3/exchangeInfo?{query}"
        attempt = 0
        while not self._stop.is_set():
            try:
                response = await asyncio.to_thread(http_get, url, self.cfg.http_timeout_s, self.local_addr)
                instruments = parse_exchange_info(response.body, Market.SPOT)
                missing = [s for s in self.symbols if s not in instruments]
                if missing:
                    log.error("binance spot: exchange does not list %s; they will be dropped", missing)
                if self.journal is not None:  # the decoder after the journal needs the same instruments
                    self.journal.append(RecordKind.INSTRUMENTS, "", response.body, now_us())
                self.instruments = instruments
                return
            except (HttpError, OSError, ParseError) as exc:
                wait = min(2**attempt, 30)
                log.warning("binance spot exchangeInfo failed (%s); retrying in %.1fs", exc, wait)
                attempt += 1
                await self._sleep(wait)

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


ClientFactory = Callable[[int, list[str], queue.Queue], list[BinanceSpotClient]]
