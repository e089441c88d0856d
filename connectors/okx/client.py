"""OKX v5 public client: one connection to `/ws/v5/public` for a group of instrument ids.

Channels per instrument: `books` (400 levels, `seqId`/`prevSeqId` chain; the checksum is checked
downstream and only when non-zero), `trades`, `funding-rate` (SWAP only); `liquidation-orders` is
subscribed once per instrument type (SWAP / FUTURES) and filtered to our instruments by the parser.
Keepalive: the text `ping` after `ping_interval_s` (< 30 s, after which OKX drops a silent
connection) without any inbound frame, `pong` expected back within `pong_timeout_s`. A `notice` with
code 64008 (service upgrade: the connection will close in 60 s) makes the client hand over to a new
connection at once, overlapping the two until the new one holds a snapshot of every book (see
`VenueWsClient._hand_over`): no frame is lost and no gap is declared. Limits: at most
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

import orjson

from connectors.instruments import Instrument
from connectors.okx.instruments import inst_type_of, instruments_url, parse_instruments
from connectors.okx.parsing import EXCHANGE, OkxParser
from connectors.parse_errors import ParseError
from connectors.venue_ws_client import VenueWsClient, chunk_by_budget, now_us
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


class OkxClient(VenueWsClient):
    exchange = EXCHANGE
    market_label = "public"
    ping_when_idle_only = True  # "arm an N-second timer (N < 30) on every inbound message"

    def __init__(
        self,
        cfg: OkxConfig,
        connector: ConnectorConfig,
        inst_ids: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue,
        local_addr: str | None = None,
        markets: frozenset[str] = frozenset({Market.SPOT, Market.PERP, Market.FUTURE}),
    ) -> None:
        """`markets`: which of the instruments (by the market the REST list gives them) this stream
        collects, e.g. only spot ones for `spot_delta`."""
        if not inst_ids:
            raise ValueError("a client needs at least one instrument")
        super().__init__(
            connector, f"{cfg.ws_url}/ws/v5/public", shard, out,
            ping_interval_s=cfg.ping_interval_s, pong_timeout_s=cfg.pong_timeout_s,
            resync_timeout_s=cfg.resync_timeout_s, http_timeout_s=cfg.http_timeout_s, local_addr=local_addr,
        )  # fmt: skip
        self.cfg, self.inst_ids, self.channels, self.markets = cfg, inst_ids, channels, markets
        self.connects_per_s = cfg.connects_per_s
        self.instruments: dict[str, Instrument] = {}
        self.instruments_at: float | None = None
        self.inst_map: dict[str, tuple[str, str]] = {}  # instId -> (market, symbol), shared with the parser
        self.parser = OkxParser(shard, self.inst_map)
        self.last_seq: dict[str, int | None] = {}
        self.ops: deque[float] = deque()  # times of this connection's (un)subscribe requests
        self.notices_seen = 0

    # ------------------------------------------------------------------ instruments
    async def load_instruments(self) -> None:
        if not self.instruments_stale():
            return
        found: dict[str, Instrument] = {}
        for inst_type in sorted({inst_type_of(i) for i in self.inst_ids}):
            response = await self.http(instruments_url(self.cfg.rest_url, inst_type))
            try:
                found.update(parse_instruments(response.body, inst_type))
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

    # ------------------------------------------------------------------ protocol
    def topics(self) -> list[Topic]:
        out: list[Topic] = []
        inst_types: set[str] = set()
        for inst_id in self.inst_ids:
            if inst_id not in self.inst_map:
                continue
            market = self.inst_map[inst_id][0]
            if market not in self.markets:
                continue
            if CHANNEL_DEPTH in self.channels:
                out.append((self.cfg.book_channel, inst_id))
            if CHANNEL_TRADES in self.channels:
                out.append(("trades", inst_id))
            if CHANNEL_FUNDING in self.channels and market == Market.PERP:
                out.append(("funding-rate", inst_id))
            if market != Market.SPOT:
                inst_types.add(_INST_TYPE_OF_MARKET[market])
        if CHANNEL_LIQUIDATIONS in self.channels:
            out.extend(("liquidation-orders", t) for t in sorted(inst_types))
        if len(out) > self.cfg.max_args_per_connection:
            raise ValueError(
                f"{len(out)} subscriptions exceed okx.max_args_per_connection; raise total_shards"
            )
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

    async def before_connect(self) -> None:
        await super().before_connect()
        self.ops.clear()  # the op budget is per connection

    async def before_request(self) -> None:
        now = time.monotonic()
        while self.ops and now - self.ops[0] >= 3600:
            self.ops.popleft()
        if len(self.ops) >= self.cfg.subscribe_ops_per_hour:
            wait = 3600 - (now - self.ops[0])
            log.warning("okx shard %s: %d subscribe ops in the last hour; waiting %.0fs", self.shard,
                        len(self.ops), wait)  # fmt: skip
            await self._sleep(wait)
        self.ops.append(time.monotonic())

    def ping_frame(self) -> str:
        return "ping"

    def parse(self, raw: str | bytes, ingest_us: int) -> list[RawEvent]:
        return self.parser.parse(raw, ingest_us)

    def after_frame(self) -> None:
        while self.parser.notices:
            notice = self.parser.notices.pop(0)
            self.notices_seen += 1
            log.warning("okx shard %s: notice %s", self.shard, notice)
            if str(notice.get("code")) == NOTICE_RECONNECT:
                self._handover = True

    def is_book_topic(self, topic: Topic) -> bool:
        return topic[0] == self.cfg.book_channel

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

    def book_topic(self, event: RawEvent) -> Topic:
        return (self.cfg.book_channel, event.exchange_symbol)

    def gap(self, event: RawEvent) -> bool:
        inst = event.exchange_symbol
        if event.kind is Kind.DEPTH_SNAPSHOT:
            self.last_seq[inst] = event.seq
            return False
        verdict = update_verdict(self.last_seq.get(inst), event.prev_seq, event.seq)
        if verdict is None:
            return False  # no ids in these frames: only the downstream checksum can tell
        if verdict is Verdict.APPLY:
            self.last_seq[inst] = event.seq
            return False
        if verdict is Verdict.GAP:
            self.last_seq[inst] = None
            return True
        return False

    def reset_books(self) -> list[RawEvent]:
        gaps = []
        for inst, seq in self.last_seq.items():
            if inst in self.inst_map:
                market, symbol = self.inst_map[inst]
                gaps.append(RawEvent(EXCHANGE, market, symbol, inst, Kind.CONNECTION_GAP, None, now_us(),
                                     self.shard, -1, None, seq=seq))  # fmt: skip
        self.last_seq.clear()
        self.pending_resync.clear()
        return gaps
