"""Chaos run through the real process: `python -m bytewax.run dataflows.spot_delta` with a recovery store
(as k8s runs it) against the Binance spot simulator looping the recording forever while injecting random
disconnects (with frames lost to the client), stalls, 10x bursts, 429s with Retry-After on the WebSocket
handshake and on REST, 418 bans after repeated 429s, and explicit per-IP bans that also drop the
banned address's sockets. Everything lands in the embedded Iceberg warehouse.

At the end the faults stop and the replay ends (code 4100), so the process finishes on its own. Checks,
each against truth computed here from the simulator's own log (what it published, what each dropped
client missed) and the recording, never from the collector's view:

* the process never crashed or restarted and exited 0;
* every sequence break the simulator caused (lost frames, and each loop pass's id jump) while the book
  was live is one `gaps` row spanning exactly the break, and every `gaps` row is such a break;
* every book resynced: rebuilt from the committed `spot_delta` rows, each snapshot equals the recording's
  truth at its id, the diffs after it chain without a hole, and the book just before each gap and at the
  end equals the truth at its last id;
* snapshots are expired (bounded table metadata, connectors/iceberg/maintenance.py) with a
  `snapshot_max_age_s` of EXPIRY_AGE_S (45 s, an eighth of a shorter run) instead of the default hour,
  so the metadata reaches its steady state early in the run, as a 24/7 collector's does after its first hour; the tables end with far
  fewer snapshots than commits;
* memory is flat (issue #6), three ways: the Python heap (allocated blocks right after a full gc, sampled in the flow
  process and in its sink child by tests/support/memprobe, without keeping the flow from forking the child
  as it does in production) of the last third is within 5 % of the first third's, so nothing
  accumulates per connection, gap, resync or epoch; RSS has no upward trend over the second half (its
  least-squares slope projects less than RSS_BOUND_MB / 2 over that half), so a burst's allocator
  high-water is handed back (cryptoflow/allocator.py) instead of ratcheting up; and the median RSS of
  the last third is within `RSS_BOUND_MB` of the first third's (after a warm-up). The sink child (the
  process that writes every Parquet file and commit) meets the same three rules.

The same process reads Kraken v2 from the synthetic market (snapshots on the WebSocket) behind its own
faulty simulator: every connection the simulator broke while the client held a book must be one
`connection` gaps row from the last book frame that client received, and the rebuilt books must equal
the market's truth (`tests/support/chaos_kraken.py`).

`make test` runs it for 75 s; `make chaos` for CRYPTOFLOW_CHAOS_SECONDS (default 600).
CFTEST_MEMPROBE_KEEP=<file> keeps the memory probe's lines (both processes, every 5 s) for a closer look.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.iceberg.catalog import load_catalog
from cryptoflow.config import load_settings
from cryptoflow.demo import demo_environment
from cryptoflow.simulator.faults import FaultPlan
from cryptoflow.simulator.server import ExchangeSimulator
from tests.integration.test_binance_spot_end_to_end import read
from tests.support import chaos_kraken
from tests.support.book_truth import apply_level_rows
from tests.support.crash import commits_and_snapshots
from tests.support.recording_truth import binance_true_book

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DURATION_S = float(os.environ.get("CRYPTOFLOW_CHAOS_SECONDS", "75"))
SEED = int(os.environ.get("CRYPTOFLOW_CHAOS_SEED", "20261126"))
SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
POOL = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
WARMUP_S = 15.0
RSS_BOUND_MB = 25.0
HEAP_BLOCKS_TOLERANCE = 0.05  # live Python objects (sys.getallocatedblocks): last third vs first third
BAN_EVERY_S = 15.0
BAN_S = 4.0
CALM_S = 10.0
# snapshots kept (seconds, and at least / every EXPIRY_KEEP commits): the metadata's steady state must
# start early in the first third, so a 75 s run keeps ~9 s of them, a 10-minute run 45 s
EXPIRY_AGE_S = min(45.0, DURATION_S / 8)
EXPIRY_KEEP = 10 if DURATION_S >= 300 else 4


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def children_rss_kb(pid: int) -> int | None:
    """RSS of `pid`'s direct children together (the flow's sink child, `sink.executor: process`); None
    when it has none."""
    kids: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids.update(int(k) for k in (task / "children").read_text().split())
    except OSError:
        return None
    sizes = [kb for kb in (rss_kb(k) for k in kids) if kb is not None]
    return sum(sizes) if sizes else None


def memprobe_env(path: Path) -> dict[str, str]:
    """The flow process and its sink child load tests/support/memprobe: Python heap (allocated blocks,
    gc objects), glibc mallinfo and RSS by allocator region every 5 s into `path`, a line per process
    (CFTEST_MEMPROBE_FRAMES=N adds tracemalloc's top growing allocation sites, at a heavy cost)."""
    return {
        "PYTHONPATH": f"{REPO / 'tests' / 'support' / 'memprobe'}{os.pathsep}{REPO}",
        "CFTEST_MEMPROBE": str(path),
        "CFTEST_MEMPROBE_EVERY_S": os.environ.get("CFTEST_MEMPROBE_EVERY_S", "5"),
    }


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 2:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var if var else 0.0


DELTA_COLUMNS = ("exchange_symbol", "side", "price", "qty", "seq", "first_seq", "is_snapshot")


def read_columns(
    env: dict[str, str], table: str, columns: tuple[str, ...], where: str = "True"
) -> list[dict]:
    """Only the columns the checks need: a 10-minute run commits millions of level rows."""
    settings = load_settings(environ={**os.environ, **env})
    table_ = load_catalog(settings.catalog).load_table(("cryptoflow", table))
    scan = table_.scan(row_filter=where, selected_fields=columns)
    return scan.to_arrow().to_pylist()


@functools.cache
def truth(symbol: str, book_id: int) -> tuple[dict, dict]:
    return binance_true_book(symbol, book_id)


class Banner(threading.Thread):
    """Every BAN_EVERY_S bans one client address for BAN_S (418 + Retry-After) and drops its sockets,
    as an exchange does; the collector must move those shards to another address."""

    def __init__(self, sim: ExchangeSimulator) -> None:
        super().__init__(name="chaos-banner", daemon=True)
        self.sim, self.rng, self.stop, self.bans = sim, random.Random(SEED), threading.Event(), []

    def run(self) -> None:
        while not self.stop.wait(BAN_EVERY_S):
            live = sorted(set(list(self.sim._live.values())) & set(POOL))  # addresses with open sockets
            if not live:
                continue
            ip = self.rng.choice(live)
            self.sim.faults.ban(ip, BAN_S)
            self.sim.drop_connections(ip, code=1008, reason="banned")
            self.bans.append(ip)


def published_diffs(sim: ExchangeSimulator) -> dict[str, list[tuple[int, int, bool]]]:
    """Per symbol, every depth diff the simulator published, in order, as (U, u, delivered): the
    frames of each stream key up to its final position, shifted per loop pass, minus those a dropped
    client missed (the simulator's skip log)."""
    skipped = Counter(sim.stats.skipped)
    assert len(sim.stats.skipped) < sim.stats.skipped.maxlen, "skip log overflowed: shorten the run"
    out: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    for key in list(sim._cursors):
        frames = sim.venue.frames_for(key) or []
        for i in range(sim.position(key)):
            frame = sim.venue.shift(frames[i % len(frames)], i // len(frames))
            data = json.loads(frame.text)["data"]
            if data.get("e") != "depthUpdate":
                continue
            delivered = skipped[(key, frame.text)] == 0
            if not delivered:
                skipped[(key, frame.text)] -= 1
            out[data["s"]].append((data["U"], data["u"], delivered))
    assert not +skipped, f"skipped frames the published sequence does not hold: {list(+skipped)[:3]}"
    return out


def delivered_breaks(diffs: list[tuple[int, int, bool]]) -> list[tuple[int, int, bool]]:
    """(last delivered u, first delivered u after it, caused by lost frames) wherever the delivered
    stream does not continue (U != previous u + 1): lost frames, or a loop pass's id jump."""
    breaks, prev, lost = [], None, False
    for first, last, delivered in diffs:
        if not delivered:
            lost = True
            continue
        if prev is not None and first != prev + 1:
            breaks.append((prev, last, lost))
        prev, lost = last, False
    return breaks


def rebuild_and_check(symbol: str, rows: list[dict], stride: int) -> tuple[list[int], list[str]]:
    """Replays the committed rows of `symbol` (snapshots replace the book, diffs update levels) and
    compares with the recording's truth; returns (snapshot ids, problems)."""
    problems: list[str] = []
    batches: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        batches[(r["seq"], r["is_snapshot"], r["first_seq"])].append(r)
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}
    snapshots: list[int] = []
    last: int | None = None

    def check(at: int, what: str) -> None:
        if (bids, asks) != truth(symbol, at % stride):
            problems.append(f"{symbol}: book {what} at {at} differs from the recording")

    for (seq, is_snapshot, first_seq), levels in sorted(batches.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if is_snapshot:
            if last is not None:
                check(last, "before the resync")
            bids, asks = {}, {}
            snapshots.append(seq)
        elif last is None:
            problems.append(f"{symbol}: diff {first_seq}..{seq} before any snapshot")
        elif not (first_seq <= last + 1 <= seq if last == snapshots[-1] else first_seq == last + 1):
            problems.append(f"{symbol}: diff {first_seq}..{seq} does not continue {last}")
        apply_level_rows(bids, asks, levels)
        if is_snapshot:
            check(seq, "snapshot")
        last = seq
    if last is not None:
        check(last, "at the end")
    return snapshots, problems


@pytest.mark.timeout(DURATION_S + 420)
def test_chaos_run_through_bytewax_lands_every_gap_resyncs_and_stays_flat(binance_spot_venue, tmp_path):
    plan = FaultPlan(
        seed=SEED, disconnect_prob=0.004, skip_on_disconnect=3, stall_prob=0.004, stall_s=0.4,
        burst_prob=0.01, burst_frames=40, burst_factor=10.0, connect_429_prob=0.25, rest_429_prob=0.1,
        retry_after_s=1, ban_after_429s=6, ban_s=3,
    )  # fmt: skip
    # Kraken v2 (synthetic market, snapshots on the WebSocket): frame faults per frame sent, 429s on
    # connect with 418 bans after repeated ones, and the Banner's bans; its market runs into the calm
    kraken_plan = FaultPlan(
        seed=SEED + 1, disconnect_prob=0.004, stall_prob=0.004, stall_s=0.4, burst_prob=0.004,
        burst_frames=40, burst_factor=10.0, connect_429_prob=0.2, retry_after_s=1, ban_after_429s=6, ban_s=3,
    )  # fmt: skip
    kraken_venue = chaos_kraken.venue(SEED, DURATION_S + 0.8 * CALM_S)
    log_path = tmp_path / "spot_delta.log"
    probe_path = Path(os.environ.get("CFTEST_MEMPROBE_KEEP", tmp_path / "memprobe.jsonl"))
    with (
        ExchangeSimulator(binance_spot_venue, speed=10, continuous=True, loop=True, faults=plan) as sim,
        ExchangeSimulator(kraken_venue, faults=kraken_plan) as kr,
    ):
        env = {
            **demo_environment(sim, tmp_path / "warehouse"),
            **chaos_kraken.env(kr),
            "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__SYMBOLS": "[" + ", ".join(SYMBOLS) + "]",
            "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__SNAPSHOT_LIMIT": "5000",  # whole books: exact checks
            "CRYPTOFLOW_SHARDING__EGRESS_POOL": "[" + ", ".join(POOL) + "]",
            "CRYPTOFLOW_SHARDING__THROTTLE_STRIKES": "2",
            "CRYPTOFLOW_SHARDING__THROTTLE_WINDOW_S": "10",
            "CRYPTOFLOW_SHARDING__COOLDOWN_S": "3",
            "CRYPTOFLOW_CONNECTOR__RECONNECT_INITIAL_S": "0.05",
            "CRYPTOFLOW_CONNECTOR__RECONNECT_MAX_S": "1.0",
            # bounded metadata in steady state well within the run (2 s epochs: one snapshot per
            # table every 2 s); the default keeps an hour, which a 10-minute run never reaches
            "CRYPTOFLOW_SINK__SNAPSHOT_MAX_AGE_S": str(EXPIRY_AGE_S),
            "CRYPTOFLOW_SINK__SNAPSHOT_MIN_KEEP": str(EXPIRY_KEEP),
            "CRYPTOFLOW_SINK__EXPIRE_EVERY_COMMITS": str(EXPIRY_KEEP),
        }
        cmd = [sys.executable, "-m", "bytewax.run", "dataflows.spot_delta",
               "-r", str(tmp_path / "recovery"), "-s", "2", "-b", "30"]  # fmt: skip
        banner, kraken_banner = Banner(sim), Banner(kr)
        samples: list[tuple[float, int]] = []
        child_samples: list[tuple[float, int]] = []  # the sink child's RSS: it writes every Parquet file
        with log_path.open("w") as log_file:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env={**os.environ, **env, **memprobe_env(probe_path)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                start = time.monotonic()
                banner.start()
                kraken_banner.start()
                while time.monotonic() - start < DURATION_S and proc.poll() is None:
                    rss, child_rss = rss_kb(proc.pid), children_rss_kb(proc.pid)
                    if rss is not None:
                        samples.append((time.monotonic() - start, rss))
                    if child_rss is not None:
                        child_samples.append((time.monotonic() - start, child_rss))
                    time.sleep(1.0)
                assert proc.poll() is None, (
                    f"the flow died during the chaos run:\n{log_path.read_text()[-4000:]}"
                )
                # calm: faults off, bans lifted, and the replay ends after the current pass
                for b in (banner, kraken_banner):
                    b.stop.set()
                    b.join(5)
                for p, s in ((plan, sim), (kraken_plan, kr)):
                    p.disconnect_prob = p.stall_prob = p.burst_prob = 0.0
                    p.connect_429_prob = p.rest_429_prob = 0.0
                    p.ban_after_429s = 0
                    for ip in POOL:
                        s.faults.unban(ip)
                time.sleep(CALM_S)  # every book resyncs before the end (a late break needs its snapshot)
                sim.loop = False
                proc.wait(timeout=240)
            finally:
                banner.stop.set()
                kraken_banner.stop.set()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        output = log_path.read_text()
        assert proc.returncode == 0, output[-4000:]
        published = published_diffs(sim)
        stats, fault_counts = sim.stats, dict(sim.faults.counts)
        kraken_stats, kraken_faults = kr.stats, dict(kr.faults.counts)
    assert "Traceback" not in output and "crashed" not in output, output[-4000:]

    stride = binance_spot_venue.id_stride
    all_gaps = read(env, "gaps")
    gaps = [g for g in all_gaps if g["exchange"] == "binance"]
    kraken_gaps = [g for g in all_gaps if g["exchange"] == "kraken"]
    assert len(gaps) + len(kraken_gaps) == len(all_gaps)
    delta = read_columns(env, "spot_delta", DELTA_COLUMNS, "exchange == 'binance'")
    assert {g["reason"] for g in gaps} <= {"sequence", "snapshot_too_old"}
    commits, kept = commits_and_snapshots(env, "spot_delta")
    print(f"\nspot_delta: {commits} commits, {kept} snapshots kept")
    # each writer keeps EXPIRY_AGE_S of 2 s epochs plus up to min_keep + expire_every unexpired ones
    assert kept < commits if DURATION_S < 300 else kept <= commits / 2, (commits, kept)
    gap_rows = Counter((g["exchange_symbol"], g["seq_from"], g["seq_to"], g["reason"]) for g in gaps)
    assert max(gap_rows.values(), default=1) == 1, "a gap was written twice"
    expected, excused, problems, resyncs = set(), [], [], 0
    by_symbol: dict[str, list[dict]] = defaultdict(list)
    for r in delta:
        by_symbol[r["exchange_symbol"]].append(r)
    for symbol in SYMBOLS:
        snapshots, symbol_problems = rebuild_and_check(symbol, by_symbol[symbol], stride)
        problems += symbol_problems
        resyncs += max(0, len(snapshots) - 1)
        # resynced after the last break, and followed to the last diff the simulator delivered
        breaks = delivered_breaks(published[symbol])
        if breaks:
            assert snapshots and snapshots[-1] > breaks[-1][0], f"{symbol}: never resynced after {breaks[-1]}"
        last_delivered = max(u for _, u, delivered in published[symbol] if delivered)
        assert max(r["seq"] for r in by_symbol[symbol]) == last_delivered, f"{symbol}: rows stop early"
        # a break counts while the book was live: a snapshot at or before it and no break since
        live_from = iter(sorted(snapshots))
        next_snapshot, live = next(live_from, None), False
        for last_u, next_u, lost in breaks:
            while next_snapshot is not None and next_snapshot <= last_u:
                live, next_snapshot = True, next(live_from, None)
            if live:
                expected.add((symbol, last_u, next_u))
                live = False
            else:
                excused.append((symbol, last_u, next_u, lost))
        # after each gap, a resync snapshot at or past the id that revealed it
        for sym, _, seq_to, _reason in gap_rows:
            if sym == symbol and seq_to is not None:
                assert any(s >= seq_to - 1 for s in snapshots), (
                    f"{symbol}: no resync after the gap at {seq_to}"
                )
    # every break while live lies within a gaps row's span (usually exactly: a resync that itself
    # failed, e.g. frames lost again before the snapshot applied, widens one row over both breaks),
    # and every row's ends are the ends of real breaks
    spans = defaultdict(list)
    for sym, seq_from, seq_to, _reason in gap_rows:
        spans[sym].append((seq_from, seq_to))
    uncovered = [
        b
        for b in expected
        if not any((f is None or f <= b[1]) and (t is None or b[2] <= t) for f, t in spans[b[0]])
    ]
    ends = {(s, a) for s, a, _ in expected} | {(s, a) for s, a, _, _ in excused}
    starts = {(s, b) for s, _, b in expected} | {(s, b) for s, _, b, _ in excused}
    # a `snapshot_too_old` row with no `seq_from` is a sync attempt that failed before any diff applied
    # (no live book to break): it starts nowhere, so only its end must be a real break
    unreal = [
        g
        for g in gap_rows
        if (g[1] is not None and (g[0], g[1]) not in ends)
        or (g[1] is None and g[3] != "snapshot_too_old")
        or (g[2] is not None and (g[0], g[2]) not in starts)
    ]
    exact = sum(1 for g in gap_rows if (g[0], g[1], g[2]) in expected)
    lost_breaks = sum(1 for s in SYMBOLS for b in delivered_breaks(published[s]) if b[2])
    rss = rss_trend(samples)
    print(
        f"\nchaos {DURATION_S:.0f}s seed {SEED}: faults {dict(stats.faults)} {fault_counts}, bans {len(banner.bans)}, "
        f"frames skipped {stats.frames_skipped}, connections {dict(stats.connections_by_ip)}, "
        f"breaks {len(expected) + len(excused)} (lost frames {lost_breaks}), gap rows {len(gaps)}, "
        f"rows spanning exactly one break {exact}, breaks while resyncing {len(excused)}, resyncs {resyncs}, delta rows {len(delta)}, "
        f"RSS MB first third {rss.first_mb:.1f} last third {rss.last_mb:.1f} (samples {rss.samples})"
    )
    # the faults really happened
    assert stats.faults["disconnect"] > 0 and stats.faults["stall"] > 0 and stats.faults["burst"] > 0
    assert fault_counts.get("ws_429", 0) > 0 and fault_counts.get("rest_429", 0) > 0
    assert banner.bans and stats.faults["ban_drop"] > 0
    assert len([ip for ip in stats.connections_by_ip if ip in POOL]) > 1
    assert uncovered == [], uncovered[:5]
    assert unreal == [], unreal[:5]
    assert lost_breaks > 0  # lost frames did cause breaks, not only the loop passes
    assert problems == [], problems[:10]
    assert resyncs >= sum(1 for g in gaps if g["reason"] == "sequence") > 0
    check_kraken(env, kraken_venue, kraken_stats, kraken_faults, kraken_gaps, kraken_banner.bans)
    print("RSS MB by tenth:", rss.by_tenth)
    probe = [json.loads(line) for line in probe_path.read_text().splitlines()]
    print(f"RSS slope over the second half {rss.slope:+.2f} MB/min")
    check_heap_flat([p for p in probe if p["process"] == "flow"], "the flow's")
    assert_rss_flat(rss, "RSS")
    assert "sink child process forked" in output, (
        "the flow did not fork its sink child, as it does in production"
    )
    check_child_memory(child_samples, [p for p in probe if p["process"] == "sink_child"])


def check_heap_flat(probe: list[dict], whose: str) -> None:
    """One process's memory probe lines: its Python heap (live blocks after a full gc) in the last
    third within HEAP_BLOCKS_TOLERANCE of the first third's."""
    probe = [p for p in probe if WARMUP_S <= p["t"] <= DURATION_S]
    assert len(probe) >= 3, f"{whose} memory probe wrote {len(probe)} lines"
    p_third = max(1, len(probe) // 3)
    blocks_first = statistics.median(p["live_blocks"] for p in probe[:p_third])
    blocks_last = statistics.median(p["live_blocks"] for p in probe[-p_third:])
    print(
        f"{whose} Python heap blocks first third {blocks_first:.0f} last third {blocks_last:.0f}; "
        f"RSS MB by region first/last probe {probe[0]['rss_by_region_mb']} {probe[-1]['rss_by_region_mb']}; "
        f"glibc in use MB {probe[0]['mallinfo_kb'].get('uordblks', 0) // 1024} -> "
        f"{probe[-1]['mallinfo_kb'].get('uordblks', 0) // 1024}"
    )
    assert blocks_last <= blocks_first * (1 + HEAP_BLOCKS_TOLERANCE), (
        f"{whose} Python heap grew: a leak; object types grown most: {probe[-1]['types_grown']}"
    )


def check_child_memory(samples: list[tuple[float, int]], probe: list[dict]) -> None:
    """The sink child's memory is flat by the flow's rules: its Python heap, and its RSS."""
    assert len([t for t, _ in samples if t >= WARMUP_S]) >= 3, (
        f"the sink child was not seen ({len(samples)} samples)"
    )
    check_heap_flat(probe, "the sink child's")
    rss = rss_trend(samples)
    print(
        f"sink child RSS MB first third {rss.first_mb:.1f} last third {rss.last_mb:.1f}, max {rss.max_mb:.1f}, "
        f"slope over the second half {rss.slope:+.2f} MB/min (samples {rss.samples}); by tenth {rss.by_tenth}"
    )
    assert_rss_flat(rss, "the sink child's RSS")


@dataclass
class RssTrend:
    first_mb: float  # median of the first third after the warm-up
    last_mb: float  # median of the last third
    slope: float  # MB per minute over the second half (least squares)
    max_mb: float
    by_tenth: list[float]
    samples: int


def rss_trend(samples: list[tuple[float, int]]) -> RssTrend:
    """(seconds, RSS KB) samples -> the numbers the memory rules check."""
    rss_mb = [kb / 1024 for t, kb in samples if t >= WARMUP_S]
    third, tenth = max(1, len(rss_mb) // 3), max(1, len(rss_mb) // 10)
    second_half = [(t, kb / 1024) for t, kb in samples if t >= max(WARMUP_S, DURATION_S / 2)]
    return RssTrend(
        first_mb=statistics.median(rss_mb[:third]),
        last_mb=statistics.median(rss_mb[-third:]),
        slope=slope_mb_per_min(second_half),
        max_mb=max(rss_mb),
        by_tenth=[round(statistics.median(rss_mb[i : i + tenth]), 1) for i in range(0, len(rss_mb), tenth)],
        samples=len(rss_mb),
    )


def assert_rss_flat(rss: RssTrend, who: str) -> None:
    """No upward trend over the second half (the slope projects under RSS_BOUND_MB / 2 over it), and the
    last third's median within RSS_BOUND_MB of the first third's."""
    assert rss.slope * (DURATION_S / 2) / 60 < RSS_BOUND_MB / 2, (
        f"{who} still rising in the second half: {rss.slope:+.2f} MB/min"
    )
    assert rss.last_mb - rss.first_mb < RSS_BOUND_MB, (
        f"{who} grew from {rss.first_mb:.1f} to {rss.last_mb:.1f} MB"
    )


def check_kraken(env, venue, stats, fault_counts, gaps, bans) -> None:
    """Kraken: every connection the simulator broke while the client held a book is one `connection`
    gap row from the last book frame that client received, every gap row is such a break (or a
    connection the client itself replaced), every gap is followed by a fresh snapshot, and the book
    rebuilt from the committed rows is the market's truth at each snapshot, before each resync and at
    the end."""
    rows = read_columns(env, "spot_delta", chaos_kraken.COLUMNS, "exchange == 'kraken'")
    broken, ended = chaos_kraken.breaks(stats)
    gap_keys = Counter((g["symbol"], chaos_kraken.us(g["time_from"])) for g in gaps)
    problems, resyncs, by_symbol = [], 0, defaultdict(list)
    for r in rows:
        by_symbol[r["symbol"]].append(r)
    for symbol in chaos_kraken.SYMBOLS:
        snapshots, symbol_problems = chaos_kraken.rebuild_and_check(venue.market, symbol, by_symbol[symbol])
        problems += symbol_problems
        resyncs += max(0, len(snapshots) - 1)
        for g in gaps:
            if g["symbol"] == symbol and not any(s > g["source_offset"] for s in snapshots):
                problems.append(f"{symbol}: no snapshot after the gap at offset {g['source_offset']}")
    missing = sorted(broken - set(gap_keys))
    unreal = sorted(set(gap_keys) - ended)
    ends = Counter(s.ended_by for s in stats.sessions)
    print(
        f"kraken: faults {dict(stats.faults)} {fault_counts}, bans {len(bans)}, sessions {dict(ends)}, "
        f"frames lost {stats.frames_skipped}, connections {dict(stats.connections_by_ip)}, "
        f"breaks with a live book {len(broken)}, gap rows {len(gaps)} {dict(Counter(g['reason'] for g in gaps))}, "
        f"resyncs {resyncs}, delta rows {len(rows)}, market changes {venue.feed.changes_sent}"
    )
    assert stats.faults["disconnect"] > 0 and stats.faults["stall"] > 0 and stats.faults["burst"] > 0
    assert fault_counts.get("ws_429", 0) > 0 and bans and stats.faults["ban_drop"] > 0
    assert venue.feed.task is not None and venue.feed.task.done()  # the market ran to its end
    assert {g["reason"] for g in gaps} <= {"connection"}  # no frame lost on a live connection
    assert max(gap_keys.values(), default=1) == 1, "a gap was written twice"
    assert missing == [], missing[:5]
    assert unreal == [], unreal[:5]
    assert problems == [], problems[:10]
    assert resyncs >= len(gaps) > 0
