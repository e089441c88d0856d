"""Egress on loopback: every shard's sockets come from its own 127.0.0.x address, and an IP that draws
429s is rotated away while its shard reconnects from another address and resyncs its books: Binance
spot and USD-M, and every subscribe venue (Bybit, OKX, Coinbase, Kraken) through the same client base."""

import os
import queue
import time
from collections import Counter

import pytest

from connectors.signals import END
from cryptoflow.model import Kind
from cryptoflow.sharding import group_by_shard
from cryptoflow.simulator.faults import FaultPlan
from cryptoflow.simulator.server import ExchangeSimulator
from tests.integration.test_binance_spot_end_to_end import read, run_flow
from tests.support.book_check import BookChecker
from tests.support.collector import InProcessCollector, settings_for
from tests.support.recording_truth import binance_spot_expected_levels
from tests.support.subscribe_clients import run_to_end
from tests.support.venue_matrix import CASES, VenueCase

pytestmark = pytest.mark.integration
SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
POOL = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


@pytest.fixture
def env(binance_spot_simulator, tmp_path):
    from cryptoflow.demo import demo_environment

    return demo_environment(binance_spot_simulator, tmp_path / "warehouse")


def test_each_shard_connects_from_its_own_loopback_ip(env, binance_spot_simulator):
    env = {
        **env,
        "CRYPTOFLOW_SHARDING__EGRESS_POOL": "[" + ", ".join(POOL) + "]",
        "CRYPTOFLOW_SHARDING__PER_SHARD_IP_OVERRIDE": "{2: 127.0.0.9}",
    }
    run_flow("spot_delta", env, workers=2)
    stats = binance_spot_simulator.stats
    # expected: round-robin over the sorted shards that hold symbols, shard 2 pinned by its override
    groups = group_by_shard("binance", SYMBOLS, 4)
    rr = iter(POOL)
    expected_ip = {shard: "127.0.0.9" if shard == 2 else next(rr) for shard in sorted(groups)}
    assert len(set(expected_ip.values())) == len(groups) > 1
    for shard, ip in expected_ip.items():
        assert stats.connections_by_ip[ip] == 1
        (path,) = stats.streams_by_ip[ip]
        streams = path.split("streams=")[1].split("/")
        assert sorted(streams) == sorted(f"{s.lower()}@depth@100ms" for s in groups[shard])
        # REST (exchangeInfo + a depth snapshot per symbol) left from the same address
        assert stats.rest_by_ip[(ip, "/api/v3/depth")] == len(groups[shard])
        assert stats.rest_by_ip[(ip, "/api/v3/exchangeInfo")] >= 1
    assert "127.0.0.1" not in stats.connections_by_ip  # nothing used the default route
    rows = read(env, "spot_delta")
    assert Counter(r["exchange_symbol"] for r in rows) == binance_spot_expected_levels()


def test_an_ip_that_draws_429s_is_rotated_away_and_its_shard_resyncs(binance_spot_venue):
    plan = FaultPlan(retry_after_s=1, skip_on_disconnect=6)
    with ExchangeSimulator(binance_spot_venue, speed=4, continuous=True, loop=True, faults=plan) as sim:
        settings = settings_for(
            sim,
            sharding__egress_pool="[" + ", ".join(POOL) + "]",
            sharding__throttle_strikes="2",
            sharding__cooldown_s="300",
            exchanges__binance__spot__symbols="[" + ", ".join(SYMBOLS) + "]",
        )
        checker = BookChecker(binance_spot_venue.id_stride)
        with InProcessCollector(settings) as collector:
            nkn_shard = next(s for s, syms in collector.shards.items() if "NKNUSDT" in syms)
            ip = collector.egress.address_for(nkn_shard)
            assert ip in POOL
            applied = lambda: checker.logic["NKNUSDT"].counters.applied if "NKNUSDT" in checker.logic else 0  # noqa: E731
            assert collector.pump(checker.feed, lambda: checker.live("NKNUSDT") and applied() >= 10, 30)
            before = applied()

            sim.faults.throttle(ip)  # every request from this IP now draws 429 + Retry-After
            sim.drop_connections(ip)  # and its live WebSocket is cut; the market moves on meanwhile

            moved = lambda: collector.egress.address_for(nkn_shard) != ip  # noqa: E731
            resynced = lambda: moved() and checker.gaps()["NKNUSDT"] >= 1 and checker.live("NKNUSDT")  # noqa: E731
            assert collector.pump(checker.feed, lambda: resynced() and applied() >= before + 10, 45)
            new_ip = collector.egress.address_for(nkn_shard)
            assert collector.alive()

        stats = sim.stats
        assert stats.refused[(ip, "ws", 429)] >= 2  # it kept trying the throttled IP, honouring Retry-After
        assert collector.egress.rotations[0] == (nkn_shard, ip, new_ip)
        assert new_ip == POOL[(POOL.index(ip) + 1) % len(POOL)]  # the next IP of the pool
        assert stats.connections_by_ip[new_ip] >= 1
        assert stats.rest_by_ip[(new_ip, "/api/v3/depth")] >= 1  # the resync snapshot came from it too
        assert stats.frames_skipped >= 6  # frames published while it was locked out: a real gap
        # every snapshot the book adopted, and the book now, equal the truth from the recording
        assert checker.snapshots_checked >= 2 and checker.mismatches == []
        assert checker.compare_live_books()["NKNUSDT"]
        # the break is a `gaps` row spanning exactly what the stream lost
        gap_rows = [
            (g.exchange_symbol, g.seq_from, g.seq_to) for g in checker.gap_rows if g.reason == "sequence"
        ]
        assert gap_rows == checker.breaks and len(gap_rows) >= 1
        # other shards never moved
        assert {r[0] for r in collector.egress.rotations} == {nkn_shard}


def test_loopback_aliases_work_here():
    # 127.0.0.0/8 is all loopback on Linux; on other systems the aliases need `ifconfig lo0 alias`
    if os.uname().sysname != "Linux":
        pytest.skip("loopback aliases need setup outside Linux")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.7", 0))
        assert s.getsockname()[0] == "127.0.0.7"


USDM_SYMBOLS = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]


def test_usdm_lanes_and_rest_leave_from_the_shard_ip_and_a_throttled_ip_is_left(binance_usdm_venue):
    """USD-M opens two connections per shard (`/public` for depth, `/market` for aggTrade): both, and the
    shard's REST calls, bind to its egress IP. The first shard's IP answers every request with 429, so
    that shard moves to the next IP of the pool and collects everything from there."""
    from connectors.binance.client import CHANNEL_DEPTH, CHANNEL_TRADES, USDM, BinanceClient
    from connectors.binance.source import binance_shards
    from connectors.egress import egress_from_config
    from cryptoflow.config import load_settings
    from tests.support.recording_truth import binance_usdm_trades

    with ExchangeSimulator(binance_usdm_venue, faults=FaultPlan(retry_after_s=1)) as sim:
        settings = load_settings(
            environ={
                "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ENABLED": "true",
                "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__SYMBOLS": "[" + ", ".join(USDM_SYMBOLS) + "]",
                "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__WS_URL": sim.ws_url,
                "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__REST_URL": sim.http_url,
                "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
                "CRYPTOFLOW_CONNECTOR__RECONNECT_INITIAL_S": "0.05",
                "CRYPTOFLOW_SHARDING__TOTAL_SHARDS": "4",
                "CRYPTOFLOW_SHARDING__EGRESS_POOL": "[" + ", ".join(POOL) + "]",
                "CRYPTOFLOW_SHARDING__THROTTLE_STRIKES": "2",
                "CRYPTOFLOW_SHARDING__COOLDOWN_S": "300",
            }
        )
        shards = binance_shards(settings, USDM)
        assert len(shards) > 1
        egress = egress_from_config(settings.sharding, shards)
        first = min(shards)
        throttled = egress.address_for(first)
        sim.faults.throttle(throttled)
        out: queue.Queue = queue.Queue()
        cfg = settings.exchanges.binance.usdm
        clients = [
            BinanceClient(USDM, cfg, settings.connector, syms, {CHANNEL_DEPTH, CHANNEL_TRADES}, shard, out,
                          egress=egress)
            for shard, syms in shards.items()
        ]  # fmt: skip
        events = run_to_end(clients, out)

    stats = sim.stats
    moved_to = POOL[(POOL.index(throttled) + 1) % len(POOL)]
    assert egress.address_for(first) == moved_to and egress.rotations[0] == (first, throttled, moved_to)
    assert stats.refused[(throttled, "rest", 429)] + stats.refused[(throttled, "ws", 429)] >= 2
    assert stats.connections_by_ip.get(throttled, 0) == 0  # no connection was ever served to it
    for shard, syms in shards.items():
        ip = moved_to if shard == first else egress.address_for(shard)
        depth = sorted(f"{s.lower()}@depth@100ms" for s in syms)
        trades = sorted(f"{s.lower()}@aggTrade" for s in syms)
        assert f"/public/stream?streams={'/'.join(depth)}" in stats.streams_by_ip[ip]
        assert f"/market/stream?streams={'/'.join(trades)}" in stats.streams_by_ip[ip]
        assert stats.rest_by_ip[(ip, "/fapi/v1/depth")] >= len(syms)
    # every recorded trade arrived exactly once (truth read straight from the recording)
    got = Counter((e.exchange_symbol, e.seq) for e in events if e.kind is Kind.TRADE)
    want = Counter((t["s"], t["a"]) for t in binance_usdm_trades() if t["s"] in USDM_SYMBOLS)
    assert got == want and sum(want.values()) > 0


# ------------------------------------------------------------------------------------------------------
# The subscribe venues (Bybit, OKX, Coinbase, Kraken): the same egress as Binance, through the same base.

WIDE_POOL = [f"127.0.0.{n}" for n in range(2, 12)]


def _clients(case: VenueCase, settings, channels: set[str], out: queue.Queue):
    """This venue's clients per shard exactly as `cryptoflow capture` (and the flows) build them, their
    egress, and all of them in one list."""
    from connectors.egress import egress_from_config
    from cryptoflow.capture import VENUES

    shards, make_clients = VENUES[case.name][1](settings, channels)
    egress = egress_from_config(settings.sharding, shards)
    per_shard = {shard: make_clients(shard, out, egress) for shard in shards}
    return per_shard, egress, [c for cs in per_shard.values() for c in cs]


def _settings(case: VenueCase, sim: ExchangeSimulator, **extra: str):
    from cryptoflow.config import load_settings

    env = case.env(sim, sharding__egress_pool="[" + ", ".join(WIDE_POOL) + "]", **extra)
    return load_settings(environ={**os.environ, **env})


@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_shard_of_every_venue_connects_and_calls_rest_from_its_own_loopback_ip(case: VenueCase):
    out: queue.Queue = queue.Queue()
    with ExchangeSimulator(case.make_venue()) as sim:
        per_shard, egress, clients = _clients(case, _settings(case, sim), {"depth", "trades"}, out)
        events = run_to_end(clients, out)
    stats = sim.stats
    assert len(per_shard) > 1
    # round-robin over the sorted shards: each its own address
    expected_ip = {shard: WIDE_POOL[i] for i, shard in enumerate(sorted(per_shard))}
    for shard, ip in expected_ip.items():
        assert stats.connections_by_ip[ip] == len(per_shard[shard])  # one socket per client, all from ip
        assert sum(n for (peer, _), n in stats.rest_by_ip.items() if peer == ip) >= 1  # instruments too
    assert set(stats.connections_by_ip) == set(expected_ip.values())  # nothing used the default route
    assert not egress.rotations
    assert {e.shard for e in events} == set(per_shard)  # every shard collected
    assert {e.kind for e in events} >= {Kind.DEPTH_SNAPSHOT, Kind.TRADE}


def _symbols(clients) -> set[str]:
    return {s for c in clients for s in c.symbols}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_venue_ip_that_draws_429s_is_left_and_its_shard_resyncs_from_the_next_ip(case: VenueCase):
    """Live-like: connections keep being re-made (each replay's end is a lost connection; Kraken's live
    feed goes quiet, so its idle watchdog closes the socket). The first shard's IP starts answering every
    request with 429 + Retry-After: the shard retries it (honouring Retry-After) until the IP cools down,
    then moves to the next IP of the pool, reconnects from there and gets fresh snapshots of its books,
    equal to the ones it had before (the venue replays the same book)."""
    extra = {
        "connector__stop_at_replay_end": "false",
        "connector__reconnect_max_s": "0.5",
        "sharding__throttle_strikes": "2",
        "sharding__cooldown_s": "300",
        "exchanges__kraken__idle_timeout_s": "1.0",
    }
    out: queue.Queue = queue.Queue()
    with ExchangeSimulator(case.make_venue(), faults=FaultPlan(retry_after_s=1)) as sim:
        per_shard, egress, clients = _clients(case, _settings(case, sim, **extra), {"depth"}, out)
        first = min(per_shard)
        ip = egress.address_for(first)
        books = _symbols(per_shard[first])
        for client in clients:
            client.start()
        events: list = []

        def pump(until, timeout_s: float) -> bool:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not until():
                try:
                    item = out.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is not END:
                    events.append(item)
            return until()

        def snapshots(start: int) -> dict[str, object]:
            return {e.exchange_symbol: e.payload for e in events[start:]
                    if e.shard == first and e.kind is Kind.DEPTH_SNAPSHOT}  # fmt: skip

        try:
            assert pump(lambda: snapshots(0).keys() >= books, 30)
            before = snapshots(0)
            sim.faults.throttle(ip)  # every request from this IP now draws 429 + Retry-After
            assert pump(lambda: egress.address_for(first) != ip, 30)
            moved_at = len(events)
            assert pump(lambda: snapshots(moved_at).keys() >= books, 30)
            after = snapshots(moved_at)
            alive = all(c._thread is not None and c._thread.is_alive() for c in clients)
        finally:
            for client in clients:
                client.stop()
    new_ip = egress.address_for(first)
    stats = sim.stats
    assert alive
    assert stats.refused[(ip, "ws", 429)] >= 2  # it kept trying the throttled IP, honouring Retry-After
    assert egress.rotations[0] == (first, ip, new_ip) and new_ip == WIDE_POOL[WIDE_POOL.index(ip) + 1]
    assert {r[0] for r in egress.rotations} == {first}  # other shards never moved
    assert stats.connections_by_ip[new_ip] >= 1
    lost = {e.exchange_symbol for e in events if e.shard == first and e.kind is Kind.CONNECTION_GAP}
    assert lost >= books  # the books of the lost connection were marked broken
    if case.name != "kraken":  # Kraken's synthetic book moved on meanwhile; the recordings replay alike
        assert after == {s: before[s] for s in after}
