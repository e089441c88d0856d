"""Binance WebSocket client for one shard, spot or USD-M futures: subscribe, read, fetch REST snapshots,
resync, rotate connections before Binance's 24 h expiry.

Runs in its own thread with its own asyncio loop and hands parsed `RawEvent`s to a bounded queue, so
Bytewax's `next_batch` never blocks on the network. With a journal (`out` is a `JournalWriter`) it
writes the raw frames and REST bodies of exactly those events instead (plus the exchangeInfo bodies and
an END record); `connectors.binance.decode.BinanceDecoder` turns them into the same events after the
journal, deterministically. REST snapshots are injected into the same ordered stream; whether it is
consistent is decided downstream by the pure sequencing rules (`operators.sequencing.binance`), which
the client also runs (ids only) to know when to fetch a snapshot.

Connections ("lanes"): the shard's streams are grouped by endpoint (spot: `/stream`; USD-M since the 2026
split: `/public/stream` for `@depth*` and `@bookTicker`, `/market/stream` for `@aggTrade`,
`@markPrice*`, `@forceOrder`), split into chunks of at most `max_streams_per_connection` (1024), and
subscribed with `SUBSCRIBE` messages paced below the venue's inbound limit (spot 5/s, USD-M 10/s).
websockets answers the server's pings. Each lane is a `connectors.ws_client.RotatingConnection`: after
`rotate_after_s` (23 h by default) or on `serverShutdown` it opens a replacement, and hands over once both
connections have delivered a common update on every busy stream. A per-stream "newest id" filter makes the
hand-over exact: an event whose id (`u` for depth and bookTicker, the trade id, the event time `E` for
markPrice and forceOrder) is not newer than the last one emitted for that stream is a repeat and dropped.

Egress (`connectors.egress.EgressManager`, one per process, shared by every shard): every connection of
every lane (rotation replacements included) and every REST call binds to the shard's current IP, takes a
token from that IP's reconnect budget and a connection slot under its cap; a 429/418 (handshake or REST)
is reported, and an IP that keeps drawing them cools down while its shards move to the next IP. REST
calls retry with full-jitter back-off never faster than Retry-After, behind a circuit breaker; lane
reconnects back off the same way behind the client's WebSocket breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import orjson

from connectors.binance.parsing import (
    EXCHANGE,
    Instrument,
    ParseError,
    parse_depth_read,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_ws_frame,
    parse_ws_frames,
)
from connectors.egress import EgressManager
from connectors.handoff import HandoffQueue
from connectors.journal import JournalWriter, RecordKind
from connectors.signals import RUN_ID
from connectors.ws_client import (
    REPLAY_END_CLOSE_CODE,
    THROTTLE_STATUSES,
    EgressState,
    RotatingConnection,
    WsClient,
    now_us,
)
from cryptoflow import metrics
from cryptoflow.config import BinanceSpotConfig, BinanceUsdmConfig, ConnectorConfig
from cryptoflow.level_block import DepthRead
from cryptoflow.model import Kind, Market, RawEvent
from operators.sequencing.binance import spot_verdict, usdm_verdict
from operators.sequencing.sync import DiffSync, Outcome

log = logging.getLogger(__name__)

CHANNEL_DEPTH = "depth"
CHANNEL_TRADES = "trades"
CHANNEL_BOOK_TICKER = "bookTicker"  # best bid/ask with its update id: the book cross-check
CHANNEL_LIQUIDATIONS = "liquidations"  # USD-M forceOrder
CHANNEL_FUNDING = "funding"  # USD-M markPriceUpdate (funding rate, next funding time, mark/index)

SPOT, USDM = "spot", "usdm"
# Ids the duplicate filter compares, per event kind (all increase along a stream).
_FILTERED = (Kind.DEPTH_DIFF, Kind.BOOK_TICKER, Kind.TRADE, Kind.FUNDING, Kind.LIQUIDATION)
_DEPTH_DIFF = Kind.DEPTH_DIFF


def instruments_market(market: str) -> str:
    """The `Market` exchangeInfo of a Binance market is parsed as (USD-M contracts say perp/future)."""
    return Market.SPOT if market == SPOT else Market.PERP


def parse_frame(
    raw: str | bytes, instruments: dict[str, Instrument], shard: int, ingest_us: int, label: str
) -> RawEvent | None:
    """One WS frame -> event (None for control frames); a bad frame is counted, logged and dropped.
    Shared by the client and the decoder after the journal."""
    try:
        return parse_ws_frame(raw, instruments, shard, ingest_us)
    except ParseError as exc:
        count_bad_frame(exc, label)
        return None


def count_bad_frame(exc: ParseError, label: str) -> None:
    """A frame that cannot be used: counted by reason, logged, dropped."""
    metrics.BAD_FRAMES.labels(EXCHANGE, exc.reason).inc()
    if exc.reason == "unknown_symbol":
        metrics.UNKNOWN_SYMBOL.labels(EXCHANGE).inc()
    log.warning("%s: dropped frame: %s", label, exc)


@dataclass(frozen=True)
class Lane:
    """One connection's worth of streams on one endpoint path."""

    path: str  # "/stream", "/public/stream", "/market/stream"
    streams: tuple[str, ...]


def endpoint_of(stream: str, market: str, url_layout: str = "split") -> str:
    """USD-M since 2026: book data on `/public`, every other public stream on `/market`."""
    if market == SPOT or url_layout == "legacy":
        return "/stream"
    name = stream.split("@", 1)[1] if "@" in stream else stream
    return "/public/stream" if name.startswith(("depth", "bookTicker")) else "/market/stream"


def plan_lanes(
    streams: list[str], market: str, max_per_connection: int, url_layout: str = "split"
) -> list[Lane]:
    """Group streams by endpoint (in first-seen order), then fill connections up to the per-connection
    cap without splitting one symbol's streams of an endpoint (a book's depth and bookTicker stay on one
    connection, so they arrive in the exchange's order)."""
    groups: dict[str, dict[str, list[str]]] = {}
    for stream in streams:
        by_symbol = groups.setdefault(endpoint_of(stream, market, url_layout), {})
        by_symbol.setdefault(stream.split("@", 1)[0], []).append(stream)
    lanes = []
    for path, by_symbol in groups.items():
        current: list[str] = []
        for names in by_symbol.values():
            if current and len(current) + len(names) > max_per_connection:
                lanes.append(Lane(path, tuple(current)))
                current = []
            current.extend(names)  # a symbol with more streams than the cap still gets one connection
        if current:
            lanes.append(Lane(path, tuple(current)))
    return lanes


def subscribe_messages(streams: tuple[str, ...], per_message: int, first_id: int = 1) -> list[str]:
    """`{"method":"SUBSCRIBE","params":[...],"id":n}` messages of at most `per_message` streams."""
    out = []
    for n, i in enumerate(range(0, len(streams), per_message)):
        params = list(streams[i : i + per_message])
        out.append(orjson.dumps({"method": "SUBSCRIBE", "params": params, "id": first_id + n}).decode())
    return out


class DuplicateFilter:
    """Newest id emitted per (kind, symbol): drops repeats from overlapping connections."""

    def __init__(self) -> None:
        self.last: dict[tuple[Kind, str], int] = {}
        self.dropped = 0

    def fresh_many(self, events: list[RawEvent]) -> list[bool]:
        """`fresh` of each event in order, in one call (the per-batch path)."""
        last, filtered = self.last, _FILTERED
        out = []
        for ev in events:
            seq = ev.seq
            if seq is None or ev.kind not in filtered:
                out.append(True)
                continue
            key = (ev.kind, ev.exchange_symbol)
            prev = last.get(key)
            if prev is not None and seq <= prev:
                self.dropped += 1
                out.append(False)
                continue
            last[key] = seq
            out.append(True)
        return out

    def fresh(self, ev: RawEvent) -> bool:
        if ev.kind not in _FILTERED or ev.seq is None:
            return True
        key = (ev.kind, ev.exchange_symbol)
        last = self.last.get(key)
        if last is not None and ev.seq <= last:
            self.dropped += 1
            return False
        self.last[key] = ev.seq
        return True

    def seen(self, ev: RawEvent) -> bool:
        """True if an event with this id (or a newer one) was already emitted for its stream."""
        last = self.last.get((ev.kind, ev.exchange_symbol))
        return last is not None and ev.seq is not None and ev.seq <= last


class InstrumentCache:
    """exchangeInfo bodies shared by every client of the process (all shards ask for the same list),
    re-read when older than the refresh period. One fetch at a time per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: dict[str, tuple[float, bytes]] = {}

    def fresh(self, url: str, max_age_s: float) -> bytes | None:
        entry = self.bodies.get(url)
        if entry is not None and time.monotonic() - entry[0] < max_age_s:
            return entry[1]
        return None

    def put(self, url: str, body: bytes) -> None:
        self.bodies[url] = (time.monotonic(), body)


INSTRUMENTS = InstrumentCache()
INSTRUMENTS_LOCK_POLL_S = 0.005  # how often a shard waiting for another's exchangeInfo call looks again


class _LaneHandover:
    """`HandoverHandler` for one lane: the primary's reads go to the client's `_on_frames` (columns or
    events), the replacement's are parsed into events and buffered."""

    def __init__(self, client: BinanceClient, name: str) -> None:
        self.client, self.name = client, name
        self.buffer: list[tuple[RawEvent, str | bytes]] = []
        self.first: dict[tuple[Kind, str], RawEvent] = {}  # replacement's first event per stream

    def on_frames(self, raws: list[str | bytes], primary: bool) -> None:
        if primary:
            self.client._on_frames(raws)
            return
        events, kept = self.client.parse_many(raws)
        self.buffer.extend(zip(events, kept, strict=True))
        for event in events:
            if event.kind in _FILTERED and event.seq is not None:
                self.first.setdefault((event.kind, event.exchange_symbol), event)

    def on_frame(self, raw: str | bytes, primary: bool) -> None:
        self.on_frames([raw], primary)

    def wants_rotation(self, raw: str | bytes) -> bool:
        return b"serverShutdown" in raw if isinstance(raw, bytes) else "serverShutdown" in raw

    def overlap_done(self) -> bool:
        # Every stream the replacement has delivered must already have reached (on the primary) the
        # replacement's first id on it: from there on the replacement holds everything.
        return bool(self.first) and all(self.client.filter.seen(ev) for ev in self.first.values())

    def promote(self) -> None:
        buffered, self.buffer, self.first = self.buffer, [], {}
        if buffered:
            self.client.emit_many([event for event, _ in buffered], [raw for _, raw in buffered])

    def abandon(self) -> None:
        self.buffer, self.first = [], {}


__all__ = ["REPLAY_END_CLOSE_CODE", "THROTTLE_STATUSES", "now_us"]  # re-exported for spot_client


class BinanceClient(WsClient):
    """One shard's connections to Binance spot or USD-M for the given symbols and channels."""

    exchange = EXCHANGE

    def __init__(
        self,
        market: str,
        cfg: BinanceSpotConfig | BinanceUsdmConfig,
        connector: ConnectorConfig,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue | JournalWriter,
        local_addr: str | None = None,
        egress: EgressManager | None = None,
        columnar: bool = False,
    ) -> None:
        """`columnar`: hand over a read of nothing but depth diffs that simply continue their books as
        one `DepthRead` (per-symbol column groups) instead of one `RawEvent` per frame; only for flows
        whose operator takes them (the delta tables), only on a `wait` queue, never with a journal."""
        if not symbols:
            raise ValueError("a client needs at least one symbol")
        if market not in (SPOT, USDM):
            raise ValueError(f"unknown Binance market {market!r}")
        super().__init__(connector, shard, out, local_addr=local_addr, egress=egress,
                         label=f"binance-{market}-shard-{shard}")  # fmt: skip
        self.market, self.cfg = market, cfg
        self.symbols, self.channels = symbols, channels
        self._journal_meta = RUN_ID[:8]
        self.instruments: dict[str, Instrument] = {}
        self.syncs: dict[str, DiffSync] = {}
        self.filter = DuplicateFilter()
        # the current connection of each lane; a reconnect replaces the lost one (issue #6: a list kept
        # every dead connection, with its socket buffers and handover, for the life of the process)
        self.lane_connections: dict[str, RotatingConnection] = {}
        self._snapshot_tasks: dict[str, asyncio.Task] = {}
        self._frames = metrics.FRAMES.labels(EXCHANGE, Market.SPOT if market == SPOT else Market.PERP)
        self._duplicates = metrics.seq_event(EXCHANGE, "duplicate_frame")  # bound once, per batch
        self.columnar = columnar and self.journal is None and isinstance(out, HandoffQueue)

    # ------------------------------------------------------------------ venue specifics
    @property
    def _paths(self) -> tuple[str, str]:
        """(depth snapshot path, exchangeInfo path)."""
        if self.market == SPOT:
            return "/api/v3/depth", "/api/v3/exchangeInfo"
        return "/fapi/v1/depth", "/fapi/v1/exchangeInfo"

    def stream_names(self) -> list[str]:
        cfg, names = self.cfg, []
        for symbol in self.symbols:
            lower = symbol.lower()
            if CHANNEL_DEPTH in self.channels:
                names.append(f"{lower}@{cfg.depth_stream}")
            if CHANNEL_BOOK_TICKER in self.channels:
                names.append(f"{lower}@bookTicker")
            if CHANNEL_TRADES in self.channels:
                names.append(f"{lower}@{cfg.trade_stream}")
            if self.market == USDM and CHANNEL_FUNDING in self.channels:
                names.append(f"{lower}@{cfg.mark_price_stream}")  # type: ignore[union-attr]
            if self.market == USDM and CHANNEL_LIQUIDATIONS in self.channels:
                names.append(f"{lower}@forceOrder")
        return names

    def lanes(self) -> list[Lane]:
        layout = getattr(self.cfg, "url_layout", "split")
        return plan_lanes(self.stream_names(), self.market, self.cfg.max_streams_per_connection, layout)

    # ------------------------------------------------------------------ lifecycle
    async def _main(self) -> None:
        await self._load_instruments()
        verdict = spot_verdict if self.market == SPOT else usdm_verdict
        self.syncs = {s: DiffSync(verdict) for s in self.symbols}
        refresh = self._loop.create_task(self._refresh_instruments())
        try:
            await asyncio.gather(*(self._lane_loop(i, lane) for i, lane in enumerate(self.lanes())))
        finally:
            refresh.cancel()
        await self._drain_snapshot_tasks()

    async def _lane_loop(self, index: int, lane: Lane) -> None:
        """Keep one lane connected; returns on stop or (replay mode) at the end of the replay."""
        url = f"{self.cfg.ws_url}{lane.path}"
        name = f"{self._label}-lane-{index}"

        async def connect(state: EgressState) -> RotatingConnection:
            messages = subscribe_messages(lane.streams, self.cfg.streams_per_subscribe)
            conn = self._connection(
                name, url, messages, _LaneHandover(self, name), state,
                messages_per_s=self.cfg.max_messages_per_s, rotate_after_s=self.cfg.rotate_after_s,
                overlap_max_s=self.cfg.rotation_overlap_max_s,
            )  # fmt: skip
            self.lane_connections[name] = conn
            return conn

        await self._keep_connected(name, connect)

    # ------------------------------------------------------------------ frames
    def parse(self, raw: str | bytes) -> RawEvent | None:
        self._frames.inc()
        return parse_frame(raw, self.instruments, self.shard, now_us(), self._label)

    def parse_many(self, raws: list[str | bytes]) -> tuple[list[RawEvent], list[str | bytes]]:
        """One socket read's frames -> (events, the frame of each): one ingest stamp (they were read
        at the same moment) and one frame-counter increment per batch."""
        self._frames.inc(len(raws))
        return parse_ws_frames(raws, self.instruments, self.shard, now_us(), self._bad_frame)

    def _bad_frame(self, raw: str | bytes, exc: ParseError) -> None:
        count_bad_frame(exc, self._label)

    def _on_frame(self, raw: str | bytes) -> None:
        """One frame of the primary connection."""
        self._on_frames([raw])

    def _on_frames(self, raws: list[str | bytes]) -> None:
        """A batch of the primary connection's frames (what the socket reader and benchmarks drive)."""
        if self.columnar:
            read = parse_depth_read(raws, self.instruments, self.shard, now_us())
            if read is not None and self._admit(read):
                self._frames.inc(len(raws))
                self._put_read(read)
                return
        events, kept = self.parse_many(raws)
        self.emit_many(events, kept)

    def _put_read(self, read: DepthRead) -> None:
        """Hand a column read over counted as its frames (the queue's cap bounds frames either way);
        waits for room like the `wait` policy, until the client is stopped."""
        out = self.out
        while not out.put_weighted(read, read.span, 0.5):
            if self._stop.is_set():
                return

    def _admit(self, read: DepthRead) -> bool:
        """Whether every symbol's group of the read is new (duplicate filter) and continues its live book
        (the id-only sequencer); if so both move past the groups. Otherwise nothing changes and the read
        takes the per-frame path, which counts duplicates, spots gaps and asks for snapshots."""
        last, syncs, groups = self.filter.last, self.syncs, read.groups
        for group in groups:
            seen = last.get((_DEPTH_DIFF, group.exchange_symbol))
            sync = syncs.get(group.exchange_symbol)
            if (seen is not None and group.first_u <= seen) or sync is None or not sync.group_applies(group):
                return False
        for group in groups:
            last[(_DEPTH_DIFF, group.exchange_symbol)] = group.seq
            syncs[group.exchange_symbol].apply_group(group)
        return True

    def emit(self, event: RawEvent, raw: str | bytes | None = None) -> None:
        """Hand one event to the dataflow, unless it repeats one already handed over. `raw` is the frame
        it came from: the place to journal exactly the frames the dataflow gets."""
        self.emit_many([event], [raw])

    def emit_many(self, events: list[RawEvent], raws: list[str | bytes | None]) -> None:
        """`emit` for a batch, in order: repeats dropped (counted once per batch), the id-only sequencer
        run per depth diff, the rest handed over in one `_put_many` (or journaled frame by frame)."""
        if not events:
            return
        fresh = self.filter.fresh_many(events)
        syncs, journal = self.syncs, self.journal
        out: list[RawEvent] = []
        duplicates = 0
        for event, raw, is_fresh in zip(events, raws, fresh, strict=True):
            if not is_fresh:
                duplicates += 1
                continue
            if event.kind is Kind.DEPTH_DIFF:
                sync = syncs.get(event.exchange_symbol)
                if sync is not None and not sync.apply_live(event.first_seq, event.seq, event.prev_seq):
                    step = sync.on_diff(None, event.first_seq, event.seq, event.prev_seq)
                    if step.outcome in (Outcome.GAP, Outcome.SNAPSHOT_TOO_OLD, Outcome.BUFFERED):
                        self._request_snapshot(event.exchange_symbol, step.outcome.value)
            if journal is not None:
                if raw is None:
                    raise ValueError("journal mode needs the raw frame of every emitted event")
                journal.append(RecordKind.WS_FRAME, self._journal_meta, raw, event.ingest_ts_us)
            else:
                out.append(event)
        if duplicates:
            self._duplicates.inc(duplicates)
        self._put_many(out)

    # ------------------------------------------------------------------ snapshots
    def _request_snapshot(self, exchange_symbol: str, reason: str, delay_s: float = 0.0) -> None:
        task = self._snapshot_tasks.get(exchange_symbol)
        if task is not None and not task.done():
            return
        if reason != Outcome.BUFFERED.value:
            metrics.RESYNCS.labels(EXCHANGE, reason).inc()
            log.warning("%s %s: resync (%s)", self._label, exchange_symbol, reason)
        self._snapshot_tasks[exchange_symbol] = asyncio.get_running_loop().create_task(
            self._fetch_snapshot(exchange_symbol, delay_s)
        )

    async def _fetch_snapshot(self, exchange_symbol: str, delay_s: float) -> None:
        if delay_s:
            await self._sleep(delay_s)
        query = urlencode({"symbol": exchange_symbol, "limit": self.cfg.snapshot_limit})
        response = await self._get(
            f"{self.cfg.rest_url}{self._paths[0]}?{query}",
            f"snapshot {exchange_symbol}",
            self.cfg.http_timeout_s,
        )
        if response is None:
            return
        inst = self.instruments[exchange_symbol]
        ingest = now_us()
        try:
            event = parse_depth_snapshot(response, inst, self.shard, ingest)
        except ParseError as exc:
            metrics.BAD_FRAMES.labels(EXCHANGE, exc.reason).inc()
            log.warning("%s snapshot %s unusable: %s", self._label, exchange_symbol, exc)
            self._snapshot_tasks.pop(exchange_symbol, None)
            self._request_snapshot(exchange_symbol, "bad_snapshot", delay_s=1.0)
            return
        # Record the snapshot in the client's own sync and in the stream at the same point.
        step = self.syncs[exchange_symbol].on_snapshot(None, event.seq)
        if self.journal is not None:  # meta = symbol: the decoder's key to the instrument
            self.journal.append(RecordKind.REST_SNAPSHOT, exchange_symbol, response, ingest)
        else:
            self._put(event)
        if step.outcome is Outcome.SNAPSHOT_TOO_OLD:
            self._snapshot_tasks.pop(exchange_symbol, None)
            self._request_snapshot(exchange_symbol, "snapshot_too_old", delay_s=1.0)

    async def _drain_snapshot_tasks(self) -> None:
        while True:
            pending = [t for t in self._snapshot_tasks.values() if not t.done()]
            if not pending:
                return
            await asyncio.wait(pending, timeout=30)

    # ------------------------------------------------------------------ instruments
    def _instruments_url(self) -> str:
        if self.market == SPOT:
            query = urlencode({"symbols": "[" + ",".join(f'"{s}"' for s in self.symbols) + "]"})
            return f"{self.cfg.rest_url}{self._paths[1]}?{query}"
        return f"{self.cfg.rest_url}{self._paths[1]}"  # USD-M lists every contract, no filter

    async def _instruments_body(self, what: str, max_age_s: float) -> bytes | None:
        """exchangeInfo through the process-wide cache: one REST call serves every shard."""
        url = self._instruments_url()
        body = INSTRUMENTS.fresh(url, max_age_s)
        if body is not None:
            return body
        # Wait for the process-wide lock without parking an executor thread on it: the holder needs one
        # for its REST call, and clients sharing one loop share its few executor threads (with more
        # waiters than threads, the holder's call never starts: connectors/client_loop.py).
        while not INSTRUMENTS.lock.acquire(blocking=False):
            await asyncio.sleep(INSTRUMENTS_LOCK_POLL_S)
        try:
            body = INSTRUMENTS.fresh(url, max_age_s)  # another shard may have fetched it meanwhile
            if body is None:
                body = await self._get(url, what, self.cfg.http_timeout_s)
                if body is not None:
                    INSTRUMENTS.put(url, body)
            return body
        finally:
            INSTRUMENTS.lock.release()

    def _parse_instruments(self, body: bytes) -> dict[str, Instrument]:
        return parse_exchange_info(body, instruments_market(self.market))

    def _journal_instruments(self, body: bytes) -> None:
        """The decoder after the journal needs the instruments the client parsed its frames with."""
        if self.journal is not None:
            self.journal.append(RecordKind.INSTRUMENTS, "", body, now_us())

    async def _load_instruments(self) -> None:
        while not self._stop.is_set():
            body = await self._instruments_body("exchangeInfo", self.cfg.instruments_refresh_s)
            if body is None:
                return
            try:
                self._adopt_instruments(self._parse_instruments(body))
                self._journal_instruments(body)
                return
            except ParseError as exc:
                log.warning("%s exchangeInfo unusable (%s); retrying", self._label, exc)
                INSTRUMENTS.bodies.pop(self._instruments_url(), None)
                await self._sleep(5)

    def _adopt_instruments(self, instruments: dict[str, Instrument]) -> None:
        """Keep only this shard's symbols; updated in place so parsers see changes at once."""
        missing = [s for s in self.symbols if s not in instruments]
        if missing:
            log.error("%s: exchange does not list %s; their frames will be dropped", self._label, missing)
        for symbol in self.symbols:
            if symbol in instruments:
                self.instruments[symbol] = instruments[symbol]

    async def _refresh_instruments(self) -> None:
        """Instrument info is cached and re-read every `instruments_refresh_s` (listings, delistings)."""
        while not self._stop.is_set():
            await self._sleep(self.cfg.instruments_refresh_s)
            if self._stop.is_set():
                return
            body = await self._instruments_body("exchangeInfo refresh", self.cfg.instruments_refresh_s / 2)
            if body is None:
                return
            with contextlib.suppress(ParseError):
                self._adopt_instruments(self._parse_instruments(body))
                self._journal_instruments(body)
