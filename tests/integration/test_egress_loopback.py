"""Egress on loopback: every shard's sockets come from its own 127.0.0.x address, and an IP that draws
429s is rotated away while its shard reconnects from another address and resyncs its books."""

import os
from collections import Counter

import pytest

from cryptoflow.sharding import group_by_shard
from cryptoflow.simulator.faults import FaultPlan
from cryptoflow.simulator.server import ExchangeSimulator
from tests.integration.test_binance_spot_end_to_end import read, run_flow
from tests.support.book_check import BookChecker
from tests.support.collector import InProcessCollector, settings_for
from tests.support.recording_truth import binance_spot_expected_levels

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
