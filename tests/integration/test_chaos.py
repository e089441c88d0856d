"""Chaos run: the Binance spot connector against a simulator that loops the recording forever while
injecting random disconnects (with lost frames), stalls, 10x bursts and 429s on connect and on REST.

Checks: no client thread dies, every sequence break the delivered stream shows is caught as a gap by
the operator, emitted as a `gaps` row spanning it, and resynced, every book adopted and every book at the end equals the truth rebuilt from
the recording, and memory stays flat. `make test` runs it for 30 s; `make chaos` for 10 minutes
(CRYPTOFLOW_CHAOS_SECONDS=600).
"""

import os
import statistics
import time

import pytest

from cryptoflow.simulator.faults import FaultPlan
from cryptoflow.simulator.server import ExchangeSimulator
from tests.support.book_check import BookChecker
from tests.support.collector import InProcessCollector, settings_for

pytestmark = pytest.mark.integration
DURATION_S = float(os.environ.get("CRYPTOFLOW_CHAOS_SECONDS", "30"))
SEED = int(os.environ.get("CRYPTOFLOW_CHAOS_SEED", "20261126"))
SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
POOL = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.timeout(DURATION_S + 240)
def test_chaos_run_recovers_every_gap_without_crashing_or_growing(binance_spot_venue):
    plan = FaultPlan(
        seed=SEED,
        disconnect_prob=0.01,
        skip_on_disconnect=4,
        stall_prob=0.005,
        stall_s=0.4,
        burst_prob=0.01,
        burst_frames=40,
        burst_factor=10.0,
        connect_429_prob=0.15,
        rest_429_prob=0.1,
        retry_after_s=1,
    )
    with ExchangeSimulator(binance_spot_venue, speed=10, continuous=True, loop=True, faults=plan) as sim:
        settings = settings_for(
            sim,
            sharding__egress_pool="[" + ", ".join(POOL) + "]",
            sharding__throttle_strikes="2",
            sharding__throttle_window_s="10",
            sharding__cooldown_s="3",
            exchanges__binance__spot__symbols="[" + ", ".join(SYMBOLS) + "]",
        )
        checker = BookChecker(binance_spot_venue.id_stride)
        samples: list[int] = []
        next_sample = [time.monotonic()]

        def sample() -> bool:
            if time.monotonic() >= next_sample[0]:
                samples.append(rss_kb())
                next_sample[0] += 1.0
            return False

        with InProcessCollector(settings) as collector:
            collector.pump(checker.feed, sample, DURATION_S)
            assert collector.alive(), "a client thread died during the chaos run"
            # calm: faults off; every book must come back and be right
            plan.disconnect_prob = plan.stall_prob = plan.burst_prob = 0.0
            plan.connect_429_prob = plan.rest_429_prob = 0.0
            all_live = lambda: all(checker.live(s) for s in SYMBOLS)  # noqa: E731
            assert collector.pump(checker.feed, all_live, 60), {s: checker.live(s) for s in SYMBOLS}
            assert collector.alive()
            final = checker.compare_live_books()

        faults, refused = sim.stats.faults, sim.stats.refused
        injected_429 = {
            kind: sum(n for (_, k, st), n in refused.items() if k == kind and st == 429)
            for kind in ("ws", "rest")
        }
        print(
            f"chaos {DURATION_S:.0f}s seed {SEED}: events {checker.events}, faults {dict(faults)}, 429s {injected_429}, "
            f"frames skipped {sim.stats.frames_skipped}, connections {dict(sim.stats.connections_by_ip)}, "
            f"rotations {len(collector.egress.rotations)}, gaps {dict(checker.gaps())}, "
            f"snapshots {checker.snapshots_checked}, rss MB by tenth "
            f"{[round(samples[i * len(samples) // 10] / 1024) for i in range(10)] + [round(samples[-1] / 1024)]}"
        )
    # the faults really happened
    assert faults["disconnect"] > 0 and faults["stall"] > 0 and faults["burst"] > 0
    assert injected_429["ws"] > 0 and injected_429["rest"] > 0
    assert len([ip for ip in sim.stats.connections_by_ip if ip in POOL]) > 1
    # every break in the delivered stream while a book was live was caught as a gap by the operator,
    # each gap was followed by a resync snapshot, and every snapshot and final book match the truth
    gaps = checker.gaps()
    assert sum(gaps.values()) > 0
    assert gaps == checker.discontinuities_while_live
    # ... and each of them is a `gaps` row spanning exactly the break (last good id -> breaking id)
    sequence_rows = [
        (g.exchange_symbol, g.seq_from, g.seq_to) for g in checker.gap_rows if g.reason == "sequence"
    ]
    assert sorted(sequence_rows) == sorted(checker.breaks)
    assert checker.snapshots_checked >= sum(gaps.values())
    assert checker.mismatches == []
    assert final == dict.fromkeys(SYMBOLS, True)
    # memory is flat: after warm-up, the last quarter's RSS median is within 20 MB of the first's
    steady = samples[len(samples) // 5 :]
    quarter = max(1, len(steady) // 4)
    growth_kb = statistics.median(steady[-quarter:]) - statistics.median(steady[:quarter])
    assert growth_kb < 20 * 1024, f"RSS grew by {growth_kb} kB"
