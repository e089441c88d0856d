"""Clients of venues that subscribe by message on one open connection (Bybit v5, OKX v5, Coinbase
Advanced Trade, Kraken v2), on the one client base `connectors.ws_client.WsClient`.

What they share beyond the base (egress, reconnects, queue/journal output): the instrument map before
the first subscribe (journaled, so the decoder after the journal maps symbols the same way), a fresh
parser per connection (sequence numbers and merged tickers are per connection), a keepalive (fixed
interval, or only after an idle interval: OKX) with a pong deadline, an idle watchdog, per-IP connect
and message budgets shared by every shard (`connectors.ratelimit`), resync by unsubscribe + subscribe of
the books the venue's sequencing says are broken (re-asked when no snapshot comes back), a
`CONNECTION_GAP` per book when a connection is lost, and a hand-over to a replacement connection when
the venue announces a disconnect (OKX notice 64008), overlapping both until the replacement holds a
snapshot of every book.

Journal mode writes every frame of a connection (the parsers keep per-connection state, so the decoder
must see the same frames), the client's instrument map, and the connection gaps the client declared;
`SubscribeDecoder` replays them into the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from connectors.journal import JournalRecord, RecordKind
from connectors.parse_errors import ParseError
from connectors.ratelimit import budget
from connectors.signals import RUN_ID
from connectors.ws_client import EgressState, RotatingConnection, WsClient, now_us
from cryptoflow import metrics
from cryptoflow.model import Kind, RawEvent

log = logging.getLogger(__name__)

InstrumentMap = dict[str, tuple[str, str]]  # exchange symbol -> (market, BASE-QUOTE symbol)


class _Handover:
    """`HandoverHandler` of a subscribe client: the primary's frames go to the client; a replacement's
    are buffered until it holds a snapshot of every book, then replayed through the client."""

    def __init__(self, client: SubscribeClient) -> None:
        self.client = client
        self.buffer: list[str | bytes] = []
        self.seen: set[Any] = set()

    def on_frames(self, raws: list[str | bytes], primary: bool) -> None:
        if primary:
            if self.client._confirming:
                self.client._look_for_acks(raws)
            self.client._on_frames(raws)
            return
        self.buffer.extend(raws)
        for raw in raws:
            topic = self.client.snapshot_topic(raw)
            if topic is not None:
                self.seen.add(topic)

    def on_frame(self, raw: str | bytes, primary: bool) -> None:
        self.on_frames([raw], primary)

    def wants_rotation(self, raw: str | bytes) -> bool:
        return self.client.wants_rotation(raw)

    def overlap_done(self) -> bool:
        return self.client.handover_books() <= self.seen

    def promote(self) -> None:
        buffered, self.buffer, self.seen = self.buffer, [], set()
        self.client._handed_over()
        if buffered:
            self.client._on_frames(buffered)

    def abandon(self) -> None:
        self.buffer, self.seen = [], set()


class SubscribeClient(WsClient):
    """One connection to one venue URL for a fixed set of symbols and channels.

    Subclasses implement `url`, `new_parser`, `subscribe_messages`, `resubscribe_messages` and
    `instrument_map`, and optionally `prepare` (instruments), `keepalive_message`, `map_event`,
    `sequence` (ids-only gap check, or Kraken's checksum-only book), `lost_seq`,
    `wants_rotation`/`snapshot_topic`/`handover_books`."""

    market = "spot"  # the frames metric's label
    journal_key = ""  # which of a shard's decoders' parsers reads this client's frames (Bybit: category)
    keepalive_s: float | None = None
    ping_when_idle_only = False  # OKX: ping only after `keepalive_s` without any inbound frame
    pong_timeout_s: float | None = None  # no frame this long after a ping: the socket is dead
    idle_timeout_s: float | None = None  # no frame this long at all: the socket is dead
    resync_timeout_s: float | None = None  # no snapshot this long after a resubscribe: ask again
    subscribe_timeout_s: float | None = None  # no ack/snapshot this long after connecting: reconnect
    connect_limit: tuple[int, float] | None = None  # venue connects per window per source IP
    message_limit: tuple[int, float] | None = None  # venue messages per window per source IP
    messages_per_s = 5.0  # pace of the subscribe messages on one socket
    handover_timeout_s = 10.0

    def __init__(
        self,
        connector: Any,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: Any,
        *,
        local_addr: str | None = None,
        egress: Any = None,
    ) -> None:
        if not symbols:
            raise ValueError("a client needs at least one symbol")
        super().__init__(connector, shard, out, local_addr=local_addr, egress=egress)
        self.symbols, self.channels = list(symbols), set(channels)
        self.parser: Any = None
        self.resyncs = 0
        self.frames = 0
        self.connection: RotatingConnection | None = None
        self._pending_resync: set[str] = set()  # to send
        self._awaiting: dict[str, float] = {}  # sent, no snapshot yet (with `resync_timeout_s`)
        self._books: dict[str, tuple[str, str]] = {}  # books read on this connection: symbol, market
        self._last_frame = time.monotonic()
        self._conn_no = 0
        self._conn_meta = ""
        self._subscribe_count = 0
        self._journaled_instruments: bytes | None = None
        self._frames_metric = metrics.FRAMES.labels(self.exchange, self.market)  # bound once
        self._pending: list[RawEvent] | None = None  # events of the frame batch being handled
        self._confirming = False  # this connection has not shown its subscriptions work yet
        self._acked = False  # the venue acknowledged a subscribe on this connection
        self._egress_state: EgressState | None = None

    @property
    def resubscribes(self) -> int:
        """Books resynced by unsubscribe + subscribe (the Bybit/OKX clients' name for `resyncs`)."""
        return self.resyncs

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

    def instrument_map(self) -> InstrumentMap:
        """This client's symbols as its parser/mapping resolves them (journaled for the decoder)."""
        raise NotImplementedError

    def keepalive_message(self) -> str | None:
        return None

    async def prepare(self) -> None:
        """Before each connection (instrument refresh)."""

    def instruments_stale(self) -> bool:
        """True when the instrument map is due for a refresh while connected."""
        return False

    def map_event(self, event: RawEvent) -> RawEvent | None:
        """Normalize the symbol from the instrument map; None drops the event (unknown symbol)."""
        return event

    def after_frame(self) -> None:
        """Venue bookkeeping after a parsed frame (OKX notices)."""

    def sequence(self, event: RawEvent) -> None:
        """A book event of this connection: ask for a resync (`request_resync`) when it breaks."""

    def reset_sequencing(self) -> None:
        """A new connection (or hand-over): forget the ids-only sequencing state."""

    def lost_seq(self, exchange_symbol: str) -> int | None:
        """The last id of a book whose connection was lost (the `CONNECTION_GAP`'s `seq`)."""
        return None

    def wants_rotation(self, raw: str | bytes) -> bool:
        """True if this frame announces that the venue will close the connection soon."""
        return False

    def snapshot_topic(self, raw: str | bytes) -> Any | None:
        """The book topic of a snapshot frame, cheaply, without touching parser state; else None."""
        return None

    def handover_books(self) -> set[Any]:
        """Book topics a replacement connection must hold a snapshot of before it takes over."""
        return set()

    def confirm_books(self) -> set[str]:
        """Exchange symbols whose first book event shows the subscription works (`subscribe_timeout_s`);
        none: a subscribe ack (`subscribe_acked`) shows it."""
        return set()

    def subscribe_acked(self, raw: str | bytes) -> bool:
        """True if this frame acknowledges a subscribe (only looked at until the connection is confirmed)."""
        return False

    # ------------------------------------------------------------------ connection
    async def _main(self) -> None:
        await self._keep_connected(self._label, self._connect, self._connection_lost, self._watch)

    async def _connect(self, state: EgressState) -> RotatingConnection | None:
        await self.prepare()
        if self._stop.is_set():
            return None
        messages = self.subscribe_messages()
        if not messages:
            # e.g. OKX funding on a shard holding only spot instruments: no connection at all (a
            # subscription-less socket would be closed by the venue after 30 s anyway)
            log.info("%s: none of its instruments offers these channels; not connecting", self._label)
            return None
        self._subscribe_count = len(messages)
        self._egress_state = state
        self._reset_connection_state()
        self._journal_instruments()
        conn = self.connection = self._connection(
            self._label, self.url(), messages, _Handover(self), state,
            messages_per_s=self.messages_per_s, overlap_max_s=self.handover_timeout_s,
        )  # fmt: skip
        return conn

    async def _before_connect(self, ip: str | None) -> None:
        """The venue's per-IP connect budget, and its message budget for the subscribe messages."""
        if self.connect_limit is not None:
            await budget(self.exchange, "connect", ip, *self.connect_limit).acquire(self.exchange, "connect")
        if self.message_limit is not None:
            messages = budget(self.exchange, "message", ip, *self.message_limit)
            for _ in range(self._subscribe_count):
                await messages.acquire(self.exchange, "message")

    def _connection_lost(self) -> None:
        """Whatever the venue sent while we were away is lost: every book read on the connection is
        invalid until the new connection's snapshot (a `gaps` row with reason `connection` each)."""
        now = now_us()
        gaps = [
            RawEvent(self.exchange, market, symbol, exchange_symbol, Kind.CONNECTION_GAP, None, now,
                     self.shard, -1, None, seq=self.lost_seq(exchange_symbol))
            for exchange_symbol, (symbol, market) in sorted(self._books.items())
        ]  # fmt: skip
        self._books.clear()
        if not gaps:
            return
        if self.journal is not None:
            self.journal.append(RecordKind.EVENTS, self.journal_key, encode_events(gaps), now)
        else:
            for event in gaps:
                self._put(event)

    def _reset_connection_state(self) -> None:
        self._new_parser()
        self._pending_resync.clear()
        self._awaiting.clear()
        self.reset_sequencing()
        self._last_frame = time.monotonic()
        self._confirming, self._acked = self.subscribe_timeout_s is not None, False

    def _look_for_acks(self, raws: list[str | bytes]) -> None:
        if not self._acked:
            self._acked = any(self.subscribe_acked(raw) for raw in raws)

    def _subscriptions_confirmed(self) -> bool:
        books = self.confirm_books()
        return books <= self._books.keys() if books else self._acked

    async def _check_subscribed(self, ws: ClientConnection, connected_at: float, now: float) -> None:
        """A venue can accept the socket and never answer the subscribe (neither ack nor snapshot), while
        pongs keep the idle watchdog quiet: after `subscribe_timeout_s` close it, and let the reconnect
        loop back off (the connection does not count as a successful one)."""
        if self._subscriptions_confirmed():
            self._confirming = False
            return
        if self.subscribe_timeout_s is None or now - connected_at <= self.subscribe_timeout_s:
            return
        missing = sorted(self.confirm_books() - self._books.keys()) or ["a subscribe ack"]
        log.warning("%s: no subscription ack/snapshot within %.1f s (missing %s); reconnecting",
                    self._label, self.subscribe_timeout_s, ", ".join(missing[:5]))  # fmt: skip
        metrics.RECONNECTS.labels(self.exchange, "subscribe_timeout").inc()
        self._confirming = False
        if self._egress_state is not None:
            self._egress_state.connected = False  # back off as after a failed connect
        await ws.close(1011, "subscribe timeout")

    def _new_parser(self) -> None:
        """Parser state (Coinbase sequence_num, Bybit merged tickers) is per connection; so is the
        journal's connection id, which tells the decoder to start a parser afresh too."""
        self.parser = self.new_parser()
        self._conn_no += 1
        self._conn_meta = f"{self.journal_key}|{RUN_ID[:8]}.{self.number}.{self._conn_no}"

    def _handed_over(self) -> None:
        """The replacement took over: its snapshots continue every book, so no gap is declared."""
        self._new_parser()
        self._pending_resync.clear()
        self._awaiting.clear()
        self.reset_sequencing()
        metrics.RECONNECTS.labels(self.exchange, "handover").inc()
        log.info("%s: handed over to a new connection", self._label)

    def _journal_instruments(self) -> None:
        """The decoder after the journal maps symbols with the map this client used (when it changed)."""
        if self.journal is None:
            return
        body = orjson.dumps(self.instrument_map(), option=orjson.OPT_SORT_KEYS)
        if body != self._journaled_instruments:
            self.journal.append(RecordKind.INSTRUMENTS, self.journal_key, body, now_us())
            self._journaled_instruments = body

    async def _watch(self, conn: RotatingConnection) -> None:
        """While connected: send the resubscribes asked for (again when no snapshot came back),
        keepalives, close a socket that stays silent after a ping or at all (the reconnect loop takes
        over), and refresh the instrument map when due."""
        last_keepalive = time.monotonic()
        ping_sent: float | None = None
        refresh: asyncio.Task | None = None
        connected_at: float | None = None
        while True:
            await asyncio.sleep(0.02)
            ws = conn.primary
            if ws is None:
                continue
            now = time.monotonic()
            if self._confirming:
                connected_at = connected_at or now
                await self._check_subscribed(ws, connected_at, now)
            if self.resync_timeout_s is not None:
                for symbol, asked in list(self._awaiting.items()):
                    if now - asked > self.resync_timeout_s:
                        del self._awaiting[symbol]
                        self.request_resync(symbol, "resync_timeout")
            if self._pending_resync:
                symbols = sorted(self._pending_resync)
                self._pending_resync.clear()
                self.resyncs += len(symbols)
                if self.resync_timeout_s is not None:
                    self._awaiting.update(dict.fromkeys(symbols, now))
                for message in self.resubscribe_messages(symbols):
                    await self.send(ws, message)
            if ping_sent is not None and self._last_frame >= ping_sent:
                ping_sent = None
            if ping_sent is not None and self.pong_timeout_s and now - ping_sent > self.pong_timeout_s:
                log.warning("%s: no pong within %.1fs, reconnecting", self._label, self.pong_timeout_s)
                metrics.BAD_FRAMES.labels(self.exchange, "pong_timeout").inc()
                ping_sent = None
                await ws.close(1011, "pong timeout")
                continue
            if self.keepalive_s is not None:
                since = max(last_keepalive, self._last_frame) if self.ping_when_idle_only else last_keepalive
                if now - since >= self.keepalive_s:
                    message = self.keepalive_message()
                    if message is not None:
                        await self.send(ws, message)
                        ping_sent = ping_sent or now
                    last_keepalive = now
            if self.idle_timeout_s is not None and now - self._last_frame > self.idle_timeout_s:
                log.warning("%s: no frame for %.0f s; reconnecting", self._label, self.idle_timeout_s)
                metrics.RECONNECTS.labels(self.exchange, "idle").inc()
                self._last_frame = now
                await ws.close()
            if self.instruments_stale() and (refresh is None or refresh.done()):
                refresh = asyncio.get_running_loop().create_task(self._refresh_instruments())

    async def _refresh_instruments(self) -> None:
        with contextlib.suppress(OSError):
            await self.prepare()
            self._journal_instruments()

    async def send(self, ws: ClientConnection, text: str) -> None:
        """Every message after the subscribe goes through the venue's per-IP message budget."""
        if self.message_limit is not None:
            await budget(self.exchange, "message", self.ip, *self.message_limit).acquire(
                self.exchange, "message"
            )
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    # ------------------------------------------------------------------ frames
    def _on_frame(self, raw: str | bytes) -> None:
        self._on_frames([raw])

    def _on_frames(self, raws: list[str | bytes]) -> None:
        """One socket read's frames: counted once, one ingest stamp, each frame handled by `_frame`,
        their events handed over in one `_put_many` at the end."""
        ingest = now_us()
        self._last_frame = time.monotonic()
        self.frames += len(raws)
        self._frames_metric.inc(len(raws))
        self._pending = pending = []
        try:
            for raw in raws:
                self._frame(raw, ingest)
        finally:
            self._pending = None
            self._put_many(pending)

    def _frame(self, raw: str | bytes, ingest: int) -> None:
        """One frame: journal it, or parse it and emit its events."""
        if self.journal is not None:
            self.journal.append(RecordKind.WS_FRAME, self._conn_meta, raw, ingest)
        try:
            events = self.parser.parse(raw, ingest)
        except ParseError as exc:
            metrics.BAD_FRAMES.labels(self.exchange, exc.reason).inc()
            if exc.reason == "unknown_symbol":
                metrics.UNKNOWN_SYMBOL.labels(self.exchange).inc()
            log.warning("%s: dropped frame: %s", self._label, exc)
            return
        self.after_frame()
        for event in events:
            event.shard = self.shard
            mapped = self.map_event(event)
            if mapped is None:
                metrics.UNKNOWN_SYMBOL.labels(self.exchange).inc()
                continue
            self.emit(mapped)

    def emit(self, event: RawEvent) -> None:
        """Hand one event to the dataflow (journal mode: its frame is journaled already)."""
        if event.kind is Kind.DEPTH_SNAPSHOT or event.kind is Kind.DEPTH_DIFF:
            self._books[event.exchange_symbol] = (event.symbol, event.market)
            if event.kind is Kind.DEPTH_SNAPSHOT:
                self._awaiting.pop(event.exchange_symbol, None)
            self.sequence(event)
        if self.journal is None:
            if self._pending is not None:
                self._pending.append(event)  # inside `_on_frames`: handed over with its batch
            else:
                self._put(event)

    def request_resync(self, exchange_symbol: str, reason: str) -> None:
        if exchange_symbol in self._pending_resync or exchange_symbol in self._awaiting:
            return
        metrics.RESYNCS.labels(self.exchange, reason).inc()
        log.warning("%s %s: book broken (%s), resubscribing", self._label, exchange_symbol, reason)
        self._pending_resync.add(exchange_symbol)

    # ------------------------------------------------------------------ instruments
    async def _rest(self, url: str, what: str, timeout_s: float) -> bytes:
        """`_get`, raising when the client stops (the caller is between connections)."""
        body = await self._get(url, what, timeout_s)
        if body is None:
            raise ConnectionError("client stopped")
        return body

    async def _load_instruments(
        self,
        url: str,
        parse: Callable[[bytes], dict[str, str]],
        what: str,
        refresh_s: float,
        timeout_s: float,
    ) -> None:
        """(Re)load `self.instruments` (venue symbol -> BASE-QUOTE) from the venue's REST list when it is
        older than `refresh_s`; retries (egress-aware, Retry-After honoured) until it works or we stop."""
        loaded_at = getattr(self, "_instruments_at", 0.0)
        if self.instruments and time.monotonic() - loaded_at < refresh_s:  # type: ignore[attr-defined]
            return
        while not self._stop.is_set():
            body = await self._get(url, what, timeout_s)
            if body is None:
                return
            try:
                self.instruments = parse(body)
            except ParseError as exc:
                log.warning("%s unusable (%s); retrying in 5s", what, exc)
                await self._sleep(5)
                continue
            self._instruments_at = time.monotonic()
            missing = [s for s in self.symbols if s not in self.instruments]
            if missing:
                log.error("%s does not list %s; their messages are dropped", what, missing)
            return


# ------------------------------------------------------------------------------------------------------
# After the journal


def encode_events(events: list[RawEvent]) -> bytes:
    """Events a client made itself (connection gaps), as one journal record."""
    return orjson.dumps([[e.market, e.symbol, e.exchange_symbol, e.kind.value, e.ingest_ts_us, e.seq]
                         for e in events])  # fmt: skip


def decode_events(exchange: str, shard: int, payload: bytes) -> list[RawEvent]:
    return [
        RawEvent(
            exchange, market, symbol, exchange_symbol, Kind(kind), None, ingest, shard, -1, None, seq=seq
        )
        for market, symbol, exchange_symbol, kind, ingest, seq in orjson.loads(payload)
    ]


class SubscribeDecoder:
    """Journal records of a shard's subscribe clients -> the events those clients handed over.

    One parser per journaled connection (the record's `meta`), made by `new_parser(key, instruments)`
    for the client family `key` (the part of `meta` before `|`); symbols are mapped with the instrument
    map the clients journaled. Deterministic: a replay decodes the same records into the same events.
    Bad frames were counted by the client when they arrived; here they are only skipped."""

    MAX_PARSERS = 256  # connections whose parser state is kept (older ones ended long ago)

    def __init__(
        self,
        exchange: str,
        shard: int,
        state: Any = None,
        new_parser: Callable[[str, InstrumentMap], Any] | None = None,
        accept: Callable[[RawEvent], bool] | None = None,
    ) -> None:
        """`accept`: which events the reading stream wants (a capture holds all of a venue's)."""
        self.exchange, self.shard = exchange, shard
        self.make_parser, self.accept = new_parser, accept
        instruments, parsers = state if state is not None else ({}, {})
        self.instruments: dict[str, InstrumentMap] = instruments
        self.parsers: OrderedDict[str, Any] = OrderedDict(parsers)

    def decode(self, record: JournalRecord) -> list[RawEvent] | None:
        kind = record.kind
        if kind is RecordKind.WS_FRAME:
            return self._frame(record)
        if kind is RecordKind.INSTRUMENTS:
            mapping = self.instruments.setdefault(record.meta, {})
            mapping.clear()  # in place: the parsers of live connections hold it
            mapping.update({s: (m, sym) for s, (m, sym) in orjson.loads(record.payload).items()})
            return None
        if kind is RecordKind.EVENTS:
            made = decode_events(self.exchange, self.shard, record.payload)
            return made if self.accept is None else [e for e in made if self.accept(e)]
        return None

    def _frame(self, record: JournalRecord) -> list[RawEvent] | None:
        meta = record.meta
        parser = self.parsers.get(meta)
        key = meta.split("|", 1)[0]
        mapping = self.instruments.setdefault(key, {})
        if parser is None:
            assert self.make_parser is not None
            parser = self.parsers[meta] = self.make_parser(key, mapping)
            while len(self.parsers) > self.MAX_PARSERS:
                self.parsers.popitem(last=False)
        try:
            events = parser.parse(record.payload, record.ingest_us)
        except ParseError:
            return None
        out = []
        accept = self.accept
        for event in events:
            entry = mapping.get(event.exchange_symbol)
            if entry is None or (accept is not None and not accept(event)):
                continue
            event.shard = self.shard
            event.symbol = entry[1]
            out.append(event)
        return out

    def state(self) -> Any:
        return copy.deepcopy((self.instruments, dict(self.parsers)))
