"""Keepalive, dead-socket detection, early reconnect on OKX notice 64008 and the request limits of the
subscribe-message clients, against simulator venues over real sockets."""

from __future__ import annotations

import asyncio
import queue
import time
from dataclasses import replace
from decimal import Decimal

import orjson

from connectors.bybit.client import BybitClient
from connectors.okx.client import OkxClient
from connectors.signals import END
from cryptoflow.config import BybitConfig, ConnectorConfig, OkxConfig
from cryptoflow.model import Kind
from cryptoflow.simulator.bybit import BybitVenue
from cryptoflow.simulator.okx import OkxVenue
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.subscribe_replay import Connection
from operators.book.tracker import OKX, BookTracker
from tests.support import bybit_okx_truth as truth

CONNECTOR = ConnectorConfig(stop_at_replay_end=True, reconnect_initial_s=0.05)
SPOT = "/v5/public/spot"


def _spot_venue(cls=BybitVenue, frames: int = 60, spacing_s: float = 0.02) -> BybitVenue:
    """The first `frames` spot book frames of the v3 capture, re-timed `spacing_s` apart."""
    base = BybitVenue.from_v3()
    books = [f for f in base.paths[SPOT] if str(f.topic).startswith("orderbook.")]
    kept = [replace(f, ts=i * spacing_s) for i, f in enumerate(books[:frames])]
    return cls({SPOT: kept}, base.instruments)


def _wait(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not predicate():
        time.sleep(0.02)
    assert predicate()


def test_bybit_pings_on_its_interval_and_the_replay_is_complete():
    venue = _spot_venue(frames=60, spacing_s=0.02)  # 1.2 s at recorded speed
    with ExchangeSimulator(venue, speed=1.0) as sim:
        cfg = BybitConfig(ws_url=sim.ws_url, rest_url=sim.http_url, ping_interval_s=0.1, pong_timeout_s=0.5)
        q: queue.Queue = queue.Queue()
        client = BybitClient(cfg, CONNECTOR, "spot", ["BTCUSDT", "ETHUSDT"], {"depth", "trades"}, 0, q)
        client.start()
        client.finished.wait(15)
    assert client.finished.is_set() and client.connections == 1
    assert venue.pings >= 5  # ~1.4 s of connection at one ping per 0.1 s


class _SilentBybit(BybitVenue):
    """Never answers pings: a half-dead socket the client must notice."""

    def handle_request(self, conn: Connection, text: str) -> list[str]:
        replies = super().handle_request(conn, text)
        return [] if '"ping"' in text else replies


def test_bybit_no_pong_means_reconnect_and_a_connection_gap_per_live_book():
    venue = _spot_venue(_SilentBybit, frames=40, spacing_s=2.0)  # a frame every 2 s: silence between
    with ExchangeSimulator(venue, speed=1.0) as sim:
        # first ping after the replay's first frame (the snapshot, ~0.2 s in), then silence
        cfg = BybitConfig(ws_url=sim.ws_url, rest_url=sim.http_url, ping_interval_s=0.5, pong_timeout_s=0.2)
        q: queue.Queue = queue.Queue()
        client = BybitClient(cfg, CONNECTOR, "spot", ["BTCUSDT", "ETHUSDT"], {"depth"}, 0, q)
        client.start()
        events = []
        try:
            _wait(lambda: client.connections >= 2)
            while not q.empty():
                item = q.get()
                if item is not END:
                    events.append(item)
        finally:
            client.stop()
    gaps = [e for e in events if e.kind is Kind.CONNECTION_GAP]
    snapshots = {e.exchange_symbol for e in events if e.kind is Kind.DEPTH_SNAPSHOT}
    assert snapshots and {e.exchange_symbol for e in gaps} >= snapshots  # every live book marked broken
    assert all(e.symbol in ("BTC-USDT", "ETH-USDT") and e.market == "spot" for e in gaps)


NOTICE = '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade.","connId":"s"}'


class _UpgradingOkx(OkxVenue):
    """The first connection gets notice 64008 in the middle of its replay, once its books are live."""

    @classmethod
    def build(cls) -> _UpgradingOkx:
        frames = OkxVenue.from_cryptofeed_v1(stamp_seq_ids=True).paths["/ws/v5/public"]
        notice = replace(frames[0], topic="notice-once", text=NOTICE, book=None)
        venue = cls([*frames[:150], notice, *frames[150:]])
        venue.noticed = False
        return venue

    def handle_request(self, conn: Connection, text: str) -> list[str]:
        replies = super().handle_request(conn, text)
        if not self.noticed and text.startswith("{"):
            self.noticed = True
            conn.subscribed.add("notice-once")
        return replies


def test_okx_notice_64008_hands_over_to_a_new_connection_without_a_gap():
    venue = _UpgradingOkx.build()
    inst_ids = ["BTC-USDT", "UNI-USD-SWAP"]
    with ExchangeSimulator(venue, speed=0.0) as sim:
        cfg = OkxConfig(ws_url=sim.ws_url, rest_url=sim.http_url)
        q: queue.Queue = queue.Queue()
        client = OkxClient(cfg, CONNECTOR, inst_ids, {"depth", "trades"}, 0, q)
        client.start()
        client.finished.wait(20)
    events = [q.get() for _ in range(q.qsize())]
    assert client.finished.is_set() and client.connections == 2 and client.notices_seen == 1
    assert sim.stats.connections_by_ip["127.0.0.1"] == 2
    assert venue.sub_stats.topics[("subscribe", ("books", "UNI-USD-SWAP"))] == 2
    assert not [e for e in events if e is not END and e.kind is Kind.CONNECTION_GAP]
    # the notice came once both books were live on the first connection
    first_snapshots = [i for i, e in enumerate(events) if e is not END and e.kind is Kind.DEPTH_SNAPSHOT]
    assert len(first_snapshots) >= 4 and first_snapshots[2] > first_snapshots[1] + 50
    for inst in inst_ids:  # each book continues across the handover and ends on the recording's book
        tracker = BookTracker(OKX)
        for e in events:
            if e is not END and e.exchange_symbol == inst:
                tracker.on_event(e)
        assert tracker.counters.gaps == 0 and tracker.counters.snapshots >= 2
        assert tracker.counters.checksum.mismatch == 0 and tracker.counters.checksum.match > 80
        bids, asks = truth.okx_book_after(inst, 10_000)
        assert {Decimal(p): Decimal(q) for p, q in tracker.book.bids.top(10_000)} == bids
        assert {Decimal(p): Decimal(q) for p, q in tracker.book.asks.top(10_000)} == asks


def test_okx_subscribe_ops_budget_waits_instead_of_exceeding():
    cfg = OkxConfig(subscribe_ops_per_hour=2)
    client = OkxClient(cfg, CONNECTOR, ["BTC-USDT"], {"depth"}, 0, queue.Queue())
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    client._sleep = fake_sleep  # type: ignore[method-assign]

    async def three_requests() -> None:
        for _ in range(3):
            await client.before_request()

    asyncio.run(three_requests())
    assert len(waits) == 1 and 3590 < waits[0] <= 3600


class _PingWatchingOkx(OkxVenue):
    """Records, for every ping, how long the replay had been silent."""

    silences: list[float] = []

    def handle_request(self, conn: Connection, text: str) -> list[str]:
        if text == "ping":
            self.silences.append(asyncio.get_running_loop().time() - self.last_send_at)
        return super().handle_request(conn, text)


def test_okx_pings_only_after_an_idle_interval():
    base = OkxVenue.from_cryptofeed_v1()
    frames = base.paths["/ws/v5/public"]
    # 0.4 s of traffic (a frame every 20 ms), 1.5 s of silence, one last frame
    kept = [replace(f, ts=i * 0.02) for i, f in enumerate(frames[:20])] + [replace(frames[20], ts=1.9)]
    venue = _PingWatchingOkx(kept)
    venue.silences = []
    with ExchangeSimulator(venue, speed=1.0) as sim:
        cfg = OkxConfig(ws_url=sim.ws_url, rest_url=sim.http_url, ping_interval_s=0.3, pong_timeout_s=1.0)
        client = OkxClient(cfg, CONNECTOR, base.inst_ids, {"depth", "trades"}, 0, queue.Queue())
        client.start()
        client.finished.wait(15)
    assert client.finished.is_set() and client.connections == 1
    assert venue.silences, "the silence must have been bridged by pings"
    assert all(s >= 0.3 * 0.8 for s in venue.silences), venue.silences


def test_bad_frames_are_counted_and_dropped_and_the_stream_goes_on():
    from prometheus_client import REGISTRY

    def bad(reason: str) -> float:
        return (
            REGISTRY.get_sample_value("cryptoflow_bad_frames_total", {"exchange": "bybit", "reason": reason})
            or 0.0
        )

    base = _spot_venue(frames=30, spacing_s=0.0)
    frames = base.paths[SPOT]
    topic = frames[0].topic
    unknown = {"topic": topic, "type": "delta", "ts": 1, "data": {"s": "XYZUSDT", "b": [], "a": [], "u": 1}}
    no_levels = {"topic": topic, "type": "delta", "ts": 1, "data": {"s": "BTCUSDT"}}
    junk = [replace(frames[0], text=text, book=None)
            for text in ("{not json", orjson.dumps(unknown).decode(), orjson.dumps(no_levels).decode())]  # fmt: skip
    venue = BybitVenue({SPOT: frames[:10] + junk + frames[10:]}, base.instruments)
    before = (bad("malformed_json"), bad("unknown_symbol"), bad("missing_field"))
    with ExchangeSimulator(venue) as sim:
        cfg = BybitConfig(ws_url=sim.ws_url, rest_url=sim.http_url)
        q: queue.Queue = queue.Queue()
        client = BybitClient(cfg, CONNECTOR, "spot", ["BTCUSDT", "ETHUSDT"], {"depth"}, 0, q)
        client.start()
        client.finished.wait(15)
    events = [q.get() for _ in range(q.qsize())]
    assert events[-1] is END
    books = [e for e in events[:-1] if e.kind in (Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF)]
    assert len(books) == sum(1 for f in frames if f.book is not None and f.topic in
                             ("orderbook.200.BTCUSDT", "orderbook.200.ETHUSDT"))  # fmt: skip
    after = (bad("malformed_json"), bad("unknown_symbol"), bad("missing_field"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
    assert client.resyncs == 0
