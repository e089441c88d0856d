"""OKX v5 public client: one connection to `/ws/v5/public` for a group of instrument ids.

Channels per instrument: `books` (400 levels, `seqId`/`prevSeqId` chain; the checksum is checked
downstream and only when non-zero), `trades`, `funding-rate` (SWAP only); `liquidation-orders` is
subscribed once per instrument type (SWAP / FUTURES) and filtered to our instruments by the parser.
Keepalive: the text `ping` after `ping_interval_s` (< 30 s, after which OKX drops a silent
connection) without any inbound frame, `pong` expected back within `pong_timeout_s`. A `notice` with
code 64008 (service upgrade: the connection will close in 60 s) makes the client hand over to a new
connection at once, overlapping the two until the new one holds a snapshot of every book (see
`connectors.subscribe_client.SubscribeClient`): no frame is lost and no gap is declared. Limits: at most
`subscribe_ops_per_hour` (480) subscribe/unsubscribe requests per connection per hour, at most
`connects_per_s` (3) new connections per second per source IP (shared by all clients of the process).
A `prevSeqId` that is not the last `seqId` (operators/sequencing/okx.py) resyncs the book by
unsubscribe + subscribe. Frames without ids (recordings from before 2023) cannot be chained here; the
book engine still checks their checksum.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable

import orjson
from websockets.asyncio.client import ClientConnection

from connectors.bybit.client import chunk_by_budget
from connectors.egress import EgressManager
from connectors.instruments import Instrument
from connectors.journal import JournalWriter
from connectors.okx.instruments import inst_type_of, instruments_url, parse_instruments
from connectors.okx.parsing import EXCHANGE, OkxParser
from connectors.parse_errors import ParseError
from connectors.subscribe_client import InstrumentMap, SubscribeClient
from cryptoflow import metrics
from cryptoflow.config import ConnectorConfig, OkxConfig
from cryptoflow.model import Kind, Market, RawEvent
from operators.sequencing.okx import update_verdict
from operators.sequencing.verdict import Verdict

log = logging.getLogger(__name__)

CHANNEL_DEPTH = "depth"
CHANNEL_TRADES = "trades"
CHANNEL_FUNDING = "funding"
CHANNEL_LIQUIDATIONS = "liquidations"
NOTICE_RECONNECT = "64008"
ARGS_PER_REQUEST = 100  # keeps one request far below OKX's 64 KB limit

Topic = tuple[str, str]  # (channel, instId) or ("liquidation-orders", instType)
_INST_TYPE_OF_MARKET = {Market.SPOT: "SPOT", Market.PERP: "SWAP", Market.FUTURE: "FUTURES"}
_MARKET_OF_INST_TYPE = {t: m for m, t in _INST_TYPE_OF_MARKET.items()}


def predicted_market(inst_id: str) -> str:
    """The market an instrument id names (the REST list it is looked up in decides; they agree)."""
    return _MARKET_OF_INST_TYPE[inst_type_of(inst_id)]


def okx_topics(
    inst_ids: list[str],
    channels: set[str],
    markets: frozenset[str],
    book_channel: str,
    market_of: Callable[[str], str | None],
) -> list[Topic]:
    """The subscriptions for `inst_ids` (`market_of` None: unknown instrument, not subscribed)."""
    out: list[Topic] = []
    inst_types: set[str] = set()
    for inst_id in inst_ids:
        market = market_of(inst_id)
        if market is None or market not in markets:
            continue
        if CHANNEL_DEPTH in channels:
            out.append((book_channel, inst_id))
        if CHANNEL_TRADES in channels:
            out.append(("trades", inst_id))
        if CHANNEL_FUNDING in channels and market == Market.PERP:
            out.append(("funding-rate", inst_id))
        if market != Market.SPOT:
            inst_types.add(_INST_TYPE_OF_MARKET[market])
    if CHANNEL_LIQUIDATIONS in channels:
        out.extend(("liquidation-orders", t) for t in sorted(inst_types))
    return out


def plan_connections(
    inst_ids: list[str], channels: set[str], markets: frozenset[str], cfg: OkxConfig
) -> list[list[str]]:
    """Split a shard's instruments over as few connections as OKX's per-connection limits allow: at
    most `max_args_per_connection` subscriptions and `max_books_per_connection` order books each."""
    groups: list[list[str]] = []
    current: list[str] = []
    args = books = 0
    inst_types: set[str] = set()  # of `current` (one `liquidation-orders` subscription each)
    for inst_id in inst_ids:
        own = okx_topics([inst_id], channels, markets, cfg.book_channel, predicted_market)
        own_types = {key for channel, key in own if channel == "liquidation-orders"}
        need = len(own) - len(own_types)
        need_books = sum(1 for t in own if t[0] == cfg.book_channel)
        new_types = own_types - inst_types
        if current and (
            args + need + len(new_types) > cfg.max_args_per_connection
            or books + need_books > cfg.max_books_per_connection
        ):
            groups.append(current)
            current, args, books, inst_types = [], 0, 0, set()
            new_types = own_types
        current.append(inst_id)
        args += need + len(new_types)
        books += need_books
        inst_types |= new_types
    if current:
        groups.append(current)
    return groups


class OkxClient(SubscribeClient):
    exchange = EXCHANGE
    market = "public"
    ping_when_idle_only = True  # "arm an N-second timer (N < 30) on every inbound message"
    messages_per_s = 1000.0  # the subscribe requests go out in one burst (no per-socket message limit)

    def __init__(
        self,
        cfg: OkxConfig,
        connector: ConnectorConfig,
        inst_ids: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue | JournalWriter,
        local_addr: str | None = None,
        markets: frozenset[str] = frozenset({Market.SPOT, Market.PERP, Market.FUTURE}),
        egress: EgressManager | None = None,
    ) -> None:
        """`markets`: which of the instruments (by the market the REST list gives them) this stream
        collects, e.g. only spot ones for `spot_delta`."""
        if not inst_ids:
            raise ValueError("a client needs at least one instrument")
        super().__init__(connector, inst_ids, channels, shard, out, local_addr=local_addr, egress=egress)
        self.cfg, self.inst_ids, self.markets = cfg, inst_ids, markets
        self.connect_limit = (max(1, int(cfg.connects_per_s)), 1.0)
        self.keepalive_s, self.pong_timeout_s = cfg.ping_interval_s, cfg.pong_timeout_s
        self.resync_timeout_s = cfg.resync_timeout_s
        self.instruments: dict[str, Instrument] = {}
        self.instruments_at: float | None = None
        self.inst_map: InstrumentMap = {}  # instId -> (market, symbol), shared with the parser
        self.last_seq: dict[str, int | None] = {}
        self.ops: deque[float] = deque()  # times of this connection's (un)subscribe requests
        self.notices_seen = 0
        self._over_limit_logged = False
        planned = okx_topics(inst_ids, channels, markets, cfg.book_channel, predicted_market)
        books = sum(1 for t in planned if t[0] == cfg.book_channel)
        if len(planned) > cfg.max_args_per_connection or books > cfg.max_books_per_connection:
            raise ValueError(
                f"okx shard {shard}: {len(inst_ids)} instruments need {len(planned)} subscriptions "
                f"({books} books) on one connection, over okx.max_args_per_connection "
                f"{cfg.max_args_per_connection} / max_books_per_connection {cfg.max_books_per_connection}: "
                "split them with plan_connections()"
            )

    # ------------------------------------------------------------------ instruments
    async def prepare(self) -> None:
        if not self.instruments_stale():
            return
        found: dict[str, Instrument] = {}
        for inst_type in sorted({inst_type_of(i) for i in self.inst_ids}):
            url = instruments_url(self.cfg.rest_url, inst_type)
            body = await self._rest(url, "okx instruments", self.cfg.http_timeout_s)
            try:
                found.update(parse_instruments(body, inst_type))
            except ParseError as exc:
                raise ConnectionError(f"okx instruments unusable: {exc}") from None
        self.instruments, self.instruments_at = found, time.monotonic()
        missing = [i for i in self.inst_ids if i not in found]
        if missing:
            log.error("okx: instruments endpoint does not list %s; their frames are dropped", missing)
        self.inst_map.clear()
        self.inst_map.update({i: (found[i].market, found[i].symbol) for i in self.inst_ids if i in found})

    def instruments_stale(self) -> bool:
        at = self.instruments_at
        return at is None or time.monotonic() - at >= self.cfg.instruments_refresh_s

    def instrument_map(self) -> InstrumentMap:
        return dict(self.inst_map)

    # ------------------------------------------------------------------ protocol
    def url(self) -> str:
        return f"{self.cfg.ws_url}/ws/v5/public"

    def new_parser(self) -> OkxParser:
        return OkxParser(self.shard, self.inst_map)

    def topics(self) -> list[Topic]:
        """This connection's subscriptions. More than `max_args_per_connection` (only if the REST list
        classifies an instrument unlike its id, which `plan_connections` sizes by) never stops the client:
        the excess is logged and counted once per client (`subscriptions_left_out_total`: not a bad frame,
        nothing was received) and left out."""
        out = okx_topics(self.inst_ids, self.channels, self.markets, self.cfg.book_channel,
                         lambda i: self.inst_map[i][0] if i in self.inst_map else None)  # fmt: skip
        limit = self.cfg.max_args_per_connection
        if len(out) > limit:
            if not self._over_limit_logged:
                log.error("okx shard %s: %d subscriptions exceed okx.max_args_per_connection (%d); "
                          "leaving out %s", self.shard, len(out), limit, out[limit:])  # fmt: skip
                metrics.SUBSCRIPTIONS_LEFT_OUT.labels(EXCHANGE).inc(len(out) - limit)
                self._over_limit_logged = True
            out = out[:limit]
        return out

    def subscribe_requests(self, topics: list, op: str = "subscribe") -> list[str]:
        requests = []
        for group in chunk_by_budget(list(topics), ARGS_PER_REQUEST):
            args = [
                {"channel": ch, "instType": key}
                if ch == "liquidation-orders"
                else {"channel": ch, "instId": key}
                for ch, key in group
            ]
            requests.append(orjson.dumps({"op": op, "args": args}).decode())
        return requests

    def subscribe_messages(self) -> list[str]:
        return self.subscribe_requests(self.topics())

    def resubscribe_messages(self, symbols: list[str]) -> list[str]:
        topics = [(self.cfg.book_channel, s) for s in symbols]
        return self.subscribe_requests(topics, "unsubscribe") + self.subscribe_requests(topics)

    async def _before_connect(self, ip: str | None) -> None:
        await super()._before_connect(ip)
        self.ops.clear()  # the op budget is per connection
        for _ in range(self._subscribe_count):
            self.ops.append(time.monotonic())

    async def before_request(self) -> None:
        """At most `subscribe_ops_per_hour` (un)subscribe requests per connection per hour: wait."""
        now = time.monotonic()
        while self.ops and now - self.ops[0] >= 3600:
            self.ops.popleft()
        if len(self.ops) >= self.cfg.subscribe_ops_per_hour:
            wait = 3600 - (now - self.ops[0])
            log.warning("okx shard %s: %d subscribe ops in the last hour; waiting %.0fs", self.shard,
                        len(self.ops), wait)  # fmt: skip
            await self._sleep(wait)
        self.ops.append(time.monotonic())

    async def send(self, ws: ClientConnection, text: str) -> None:
        if text != "ping":
            await self.before_request()
        await super().send(ws, text)

    def keepalive_message(self) -> str:
        return "ping"

    def after_frame(self) -> None:
        while self.parser.notices:
            notice = self.parser.notices.pop(0)
            self.notices_seen += 1
            log.warning("okx shard %s: notice %s", self.shard, notice)

    def wants_rotation(self, raw: str | bytes) -> bool:
        """Notice 64008: the connection closes in 60 s for a service upgrade: hand over at once."""
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        return NOTICE_RECONNECT in text and '"notice"' in text

    def handover_books(self) -> set:
        return {t for t in self.topics() if t[0] == self.cfg.book_channel}

    def snapshot_topic(self, raw: str | bytes) -> Topic | None:
        text = raw if isinstance(raw, str) else raw.decode()
        if '"snapshot"' not in text:
            return None
        try:
            msg = orjson.loads(text)
            arg = msg["arg"]
            return (arg["channel"], arg["instId"]) if msg.get("action") == "snapshot" else None
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    def sequence(self, event: RawEvent) -> None:
        """`prevSeqId` must be the last `seqId` (operators/sequencing/okx.py); else resync the book."""
        inst = event.exchange_symbol
        if event.kind is Kind.DEPTH_SNAPSHOT:
            self.last_seq[inst] = event.seq
            return
        verdict = update_verdict(self.last_seq.get(inst), event.prev_seq, event.seq)
        if verdict is None:
            return  # no ids in these frames: only the downstream checksum can tell
        if verdict is Verdict.APPLY:
            self.last_seq[inst] = event.seq
        elif verdict is Verdict.GAP:
            self.last_seq[inst] = None
            self.request_resync(inst, "gap")

    def reset_sequencing(self) -> None:
        self.last_seq.clear()

    def lost_seq(self, exchange_symbol: str) -> int | None:
        return self.last_seq.get(exchange_symbol)


def okx_parser(shard: int) -> Callable[[str, InstrumentMap], OkxParser]:
    """The decoder's parser factory (`connectors.subscribe_client.SubscribeDecoder`)."""
    return lambda key, instruments: OkxParser(shard, instruments)
