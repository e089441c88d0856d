"""Latency at a fixed offered rate (issue 7: p99 ingest -> normalized < 2 ms at 10k frames/s).

Synthetic Kraken v2 book frames are offered at a fixed rate from this process: by default pre-generated
and pre-encoded before the timed window and only stamped (wall clock at send) and written in it, open-loop
(`cryptoflow/simulator/synthetic/paced.py`, 50k+ frames/s); `--generator live` uses the simulator's own
generator instead (`cryptoflow simulate --venues kraken --wall-clock`, ~4k frames/s at most). A real
`python -m bytewax.run dataflows.spot_ob -w 1` subscribes to every symbol over loopback and writes
`spot_ob` into a temporary SqlCatalog warehouse. `--generator-only` measures the generator alone against
a trivial counting reader in another process.
Reported, as p50 / p90 / p99 / max:

* exchange -> ingest: `ingest_ts - exchange_ts` of the committed rows (generation, socket, parse);
* ingest -> normalized and exchange -> normalized: the `cryptoflow_normalize_latency_seconds` histogram
  the book logic observes per event when it has applied it and built its rows (operators/book_logic.py),
  scraped from the flow's /metrics endpoint; percentiles are bucket upper bounds (linear inside a bucket),
  and the share of events within 2 ms (a bucket bound, so exact) is printed beside them;
* host stalls: a meter process per CPU (`cryptoflow/hostmeter.py`, ~1 % of a core each) marks the moments
  the host took the machine's CPUs away (a shared VM's vCPUs run at a fraction of real time for tens of
  ms); every 0.5 s scrape window says how slow the meter's worst unit in it was, and ingest ->
  normalized is also given over the windows without a stall (the stalled ones counted, not hidden);
* ingest -> committed: Iceberg commit time (the snapshot that added the row's data file) minus
  `ingest_ts`, per committed row; dominated by the Bytewax epoch (the sink commits once per epoch;
  `bytewax.run -s`, 10 s without recovery; `--epoch-s`).

Whether the rate was sustained is reported as offered vs achieved: book changes made (due) per second,
book frames written to the flow's sockets per second, and book events the flow normalized per second
(the histogram's count until it stopped growing); the book frames made for all connections (one per
source shard; more mean the flow reconnected and resubscribed) and the events the histogram saw.
The flow process's CPU time per normalized event and the share of the wall time its threads waited
for a CPU (the machine's other load) are reported too: a flow starved of CPU shows as latency.
Options: `--rates`, `--quick`, `--epoch-s`, `--idle-poll-ms`, `--switch-interval-ms`, `--shards`,
`--generator`, `--generator-only`, `--client-loop`, `--py-spy`, `--py-spy-gil`, `--timeline`, `--flow-cpus`
(the flow on given cores, the generator on the others), `--no-host-meter`, `--json`. Run with `make bench-latency`; `benchmarks.run` includes
`measure()` in `make bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.report import host_stalls_sentence
from connectors.iceberg.catalog import load_catalog
from cryptoflow.config import load_settings
from cryptoflow.hostmeter import HostMeter, unit_factors, window_stalled
from cryptoflow.hostmeter import summary as host_summary
from cryptoflow.simulator.kraken import KrakenV2SyntheticVenue
from cryptoflow.simulator.server import ExchangeSimulator
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from cryptoflow.simulator.synthetic.paced import PacedKrakenV2Venue, pregenerate

REPO_ROOT = Path(__file__).resolve().parents[1]
METRIC = "cryptoflow_normalize_latency_seconds"
# the worker's wait at each epoch's end for the sink's data files (connectors/iceberg/sink.py)
SEAL_METRIC = "cryptoflow_sink_seal_seconds_bucket{"
TARGET_S = 0.002  # issue 7: p99 ingest -> normalized under 2 ms (a bucket bound of the histogram)
START_AFTER_S = 4.0  # the feed starts this long after the first connection: every symbol has subscribed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, list[tuple[float, float]]]:
    """`since` label -> cumulative [(le, count)] of the normalize histogram; "seal" -> the sink's."""
    # only the two histograms: a full /metrics page holds the flow's GIL for milliseconds every scrape
    query = f"name[]={METRIC}_bucket&name[]={SEAL_METRIC[:-1]}"
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?{query}", timeout=2).read().decode()
    out: dict[str, list[tuple[float, float]]] = {}
    for line in text.splitlines():
        if line.startswith(SEAL_METRIC):
            labels, value = line[len(SEAL_METRIC) :].rsplit("} ", 1)
            fields = dict(part.split("=", 1) for part in labels.split(","))
            if fields.get("table") == '"spot_ob"':
                out.setdefault("seal", []).append((float(fields["le"].strip('"')), float(value)))
            continue
        if not line.startswith(METRIC + "_bucket{"):
            continue
        labels, value = line[len(METRIC) + 8 :].rsplit("} ", 1)
        fields = dict(part.split("=", 1) for part in labels.split(","))
        le = fields["le"].strip('"')
        out.setdefault(fields["since"].strip('"'), []).append((float(le), float(value)))
    return {k: sorted(v) for k, v in out.items()}


def _minus(end: list[tuple[float, float]], start: list[tuple[float, float]]) -> list[tuple[float, float]]:
    before = dict(start)
    return [(le, count - before.get(le, 0.0)) for le, count in end]


def histogram_percentiles(buckets: list[tuple[float, float]]) -> dict:
    """p50/p90/p99 (linear inside the bucket) and max (upper bound of the last non-empty bucket), ms."""
    total = buckets[-1][1] if buckets else 0
    out: dict = {"count": int(total)}
    if not total:
        return out
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        want, lo_bound, lo_count = q * total, 0.0, 0.0
        for le, count in buckets:
            if count >= want:
                if le == float("inf"):
                    out[name + "_ms"] = float("inf")
                else:
                    share = (want - lo_count) / (count - lo_count) if count > lo_count else 1.0
                    out[name + "_ms"] = (lo_bound + share * (le - lo_bound)) * 1000
                break
            lo_bound, lo_count = le, count
    prev = 0.0
    for le, count in buckets:
        if count > prev:
            out["max_le_ms"] = le * 1000
        prev = count
        if le == TARGET_S:  # a bucket bound: the share within the issue-7 target is exact, not interpolated
            out["within_2ms"] = count / total
    return out


def exact_percentiles(values_us: list[int]) -> dict:
    if not values_us:
        return {"count": 0}
    v = sorted(values_us)
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))] / 1000  # noqa: E731
    return {
        "count": len(v),
        "p50_ms": pick(0.5),
        "p90_ms": pick(0.9),
        "p99_ms": pick(0.99),
        "max_ms": v[-1] / 1000,
    }


def committed_latencies(env: dict[str, str], since_us: int) -> tuple[list[int], list[int]]:
    """(ingest - exchange, commit - ingest) in µs for every committed spot_ob row ingested from `since_us`
    on (rows made from the subscription snapshots, before the paced feed started, are left out)."""
    cfg = load_settings(environ=env).catalog
    table = load_catalog(cfg).load_table((cfg.namespace, "spot_ob"))
    commit_us = {s.snapshot_id: s.timestamp_ms * 1000 for s in table.snapshots()}
    if not commit_us:  # nothing committed (the report then shows no committed samples)
        return [], []
    entries = table.inspect.entries().to_pylist()
    to_ingest, to_commit = [], []
    for entry in entries:
        if entry["data_file"]["content"] != 0:  # data files only
            continue
        path = urlparse(entry["data_file"]["file_path"]).path
        cols = pq.read_table(path, columns=["exchange_ts", "ingest_ts"])
        ex = pc.cast(cols["exchange_ts"], "int64").to_pylist()
        ing = pc.cast(cols["ingest_ts"], "int64").to_pylist()
        committed = commit_us[entry["snapshot_id"]]
        for e, i in zip(ex, ing, strict=True):
            if i < since_us:
                continue
            to_commit.append(committed - i)
            if e is not None:
                to_ingest.append(i - e)
    return to_ingest, to_commit


BYTEWAX_DEFAULT_EPOCH_S = 10.0  # `python -m bytewax.run` without `-s` or recovery


def make_venue(
    generator: str, rate: float, messages: int, symbols: int
) -> KrakenV2SyntheticVenue | PacedKrakenV2Venue:
    """`pregen`: every frame made before the timed window, only the sends paced (can offer 50k+/s);
    `live`: the simulator's own generator, which makes each frame when it is due (~4k frames/s at most)."""
    names = [f"S{i:04d}-USD" for i in range(symbols)]
    if generator == "live":
        market = SyntheticMarket(names, depth=10, seed=1, keep_truth=False, wall_clock=True)
        return KrakenV2SyntheticVenue(
            market, messages=messages, rate=rate, trade_every=0, start_after_s=START_AFTER_S
        )
    market = SyntheticMarket(names, depth=10, seed=1, keep_truth=False)
    book = pregenerate(market, messages)
    return PacedKrakenV2Venue(book, market, rate=rate, start_after_s=START_AFTER_S)


@contextlib.contextmanager
def _pinned(cpus: set[int] | None, restore: set[int]):
    """Every thread of this process (the generator, the simulator's server) on `cpus` while the flow
    runs (`sched_setaffinity` sets one thread's mask, so each is set)."""

    def set_all(mask: set[int]) -> None:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), mask)

    if cpus:
        set_all(cpus)
    try:
        yield
    finally:
        if cpus:
            set_all(restore)


def run_rate(
    rate: float,
    seconds: float,
    symbols: int,
    epoch_s: int | None = None,
    idle_poll_ms: int | None = None,
    switch_interval_ms: float | None = None,
    generator: str = "pregen",
    shards: int | None = None,
    py_spy: str | None = None,
    py_spy_gil: bool = False,
    client_loop: str | None = None,
    flow_cpus: str | None = None,
    host_meter: bool = True,
) -> dict:
    messages = int(rate * seconds)
    names = [f"S{i:04d}-USD" for i in range(symbols)]
    venue = make_venue(generator, rate, messages, symbols)
    metrics_port = _free_port()
    meter = HostMeter() if host_meter else None
    with (
        tempfile.TemporaryDirectory(prefix="cryptoflow-bench-latency-") as tmp,
        meter or contextlib.nullcontext(),
        ExchangeSimulator(venue, speed=0.0) as sim,
    ):
        root = Path(tmp)
        env = {
            "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__ENABLED": "false",
            "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ENABLED": "false",
            "CRYPTOFLOW_EXCHANGES__BYBIT__ENABLED": "false",
            "CRYPTOFLOW_EXCHANGES__OKX__ENABLED": "false",
            "CRYPTOFLOW_EXCHANGES__COINBASE__ENABLED": "false",
            "CRYPTOFLOW_EXCHANGES__KRAKEN__ENABLED": "true",
            "CRYPTOFLOW_EXCHANGES__KRAKEN__WS_URL": f"{sim.ws_url}/v2",
            "CRYPTOFLOW_EXCHANGES__KRAKEN__REST_URL": sim.http_url,
            "CRYPTOFLOW_EXCHANGES__KRAKEN__SYMBOLS": "["
            + ", ".join(n.replace("-", "/") for n in names)
            + "]",
            "CRYPTOFLOW_EXCHANGES__KRAKEN__MAX_SYMBOLS_PER_CONNECTION": str(max(symbols, 1)),
            "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
            "CRYPTOFLOW_CATALOG__TYPE": "sql",
            "CRYPTOFLOW_CATALOG__URI": f"sqlite:///{root / 'catalog.db'}",
            "CRYPTOFLOW_CATALOG__WAREHOUSE": str(root),
            "CRYPTOFLOW_METRICS__PORT": str(metrics_port),
            "CRYPTOFLOW_LOG_LEVEL": "WARNING",
        }
        if idle_poll_ms is not None:
            env["CRYPTOFLOW_CONNECTOR__IDLE_POLL_MS"] = str(idle_poll_ms)
        if switch_interval_ms is not None:
            env["CRYPTOFLOW_RUNTIME__SWITCH_INTERVAL_MS"] = str(switch_interval_ms)
        if client_loop is not None:  # connector.client_loop: a thread per client, or one shared loop
            env["CRYPTOFLOW_CONNECTOR__CLIENT_LOOP"] = client_loop
        if shards is not None:  # sharding.total_shards: the symbols' connections (client threads)
            env["CRYPTOFLOW_SHARDING__TOTAL_SHARDS"] = str(shards)
        cmd = [sys.executable, "-m", "bytewax.run", "dataflows.spot_ob", "-w", "1"]
        generator_cpus = None
        if flow_cpus:  # the flow on these cores, this process (generator, simulator) on the others
            flow_set = {int(c) for c in flow_cpus.split(",")}
            generator_cpus = os.sched_getaffinity(0) - flow_set or None
            cmd = ["taskset", "-c", flow_cpus, *cmd]
        if epoch_s is not None:  # without recovery `-s` is the epoch interval (Bytewax's default 10 s)
            cmd += ["-s", str(epoch_s)]
        if (
            py_spy
        ):  # sample the flow's threads (idle waits, or only the GIL holder) into a collapsed-stack file
            spy = str(Path(sys.executable).with_name("py-spy"))
            only = ["--gil"] if py_spy_gil else ["--idle"]
            cmd = [
                spy,
                "record",
                "--threads",
                "--nonblocking",  # pausing the flow for every sample would add to the latency measured
                *only,
                "--format",
                "raw",
                "--rate",
                "250",
                "-o",
                py_spy,
                "--",
                *cmd,
            ]
        log_path = root / "flow.log"
        feed_start = feed_end = last_frame_at = None
        feed_start_us = 1 << 62  # no feed, no rows
        frames_at_start = frames_at_end = 0
        last: dict = {}
        baseline: dict = {}
        timeline: list[tuple[float, list]] = []  # (s since the feed started, cumulative ingest buckets)
        next_scrape = 0.0
        # (the scrape before the one that last saw the count grow, that count): the flow had normalized
        # its last event between that scrape and the next
        normalized, prev_scrape = (0.0, 0), 0.0
        cpu_start = cpu_end = None  # (CPU s, run-queue wait s) of the flow process, feed start / last growth
        saved_affinity = os.sched_getaffinity(0)
        with log_path.open("w") as log, _pinned(generator_cpus, saved_affinity):
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=log)
            deadline = time.monotonic() + seconds * 20 + 120
            while proc.poll() is None and time.monotonic() < deadline:
                sent, now = _changes_sent(venue), time.monotonic()
                if feed_start is None and sent > 0:
                    feed_start, frames_at_start = (now, sent), sim.stats.frames_sent
                    cpu_start = cpu_end = process_times(proc.pid)
                    feed_start_us = time.time_ns() // 1000 - 50_000  # poll period + margin
                if feed_end is None and sent >= messages:
                    feed_end = now
                if feed_start is not None and sim.stats.frames_sent > frames_at_end:
                    frames_at_end, last_frame_at = sim.stats.frames_sent, now  # written to the socket
                if now >= next_scrape or (feed_start is None and now >= next_scrape - 0.4):
                    # cumulative counts: the last scrape before the feed starts is the baseline (the
                    # subscription snapshots), the last one before the flow exits the end
                    next_scrape = now + 0.5
                    with contextlib.suppress(OSError):
                        last = scrape(metrics_port)
                        if feed_start is None:
                            baseline = last
                        else:
                            count = _count(last, baseline)
                            timeline.append((now - feed_start[0], last.get("ingest", [])))
                            if count > normalized[1]:
                                normalized = (prev_scrape, count)
                                cpu_end = process_times(proc.pid)
                        prev_scrape = now
                time.sleep(0.02)
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
        if code != 0:
            sys.stderr.write(log_path.read_text()[-3000:])
            raise RuntimeError(f"dataflows.spot_ob exited with {code}")
        to_ingest, to_commit = committed_latencies(env, feed_start_us)
    achieved = frames_per_s = None
    if feed_start is not None and feed_end is not None and feed_end > feed_start[0]:
        achieved = (messages - feed_start[1]) / (feed_end - feed_start[0])
    if feed_start is not None and last_frame_at is not None and last_frame_at > feed_start[0]:
        frames_per_s = (frames_at_end - frames_at_start) / (last_frame_at - feed_start[0])
    normalized_per_s = None
    if feed_start is not None and feed_end is not None:
        normalized_per_s = normalized[1] / (max(normalized[0], feed_end) - feed_start[0])
    ingest = histogram_percentiles(_minus(last.get("ingest", []), baseline.get("ingest", [])))
    windows, unstalled = split_windows(timeline, baseline.get("ingest", []), feed_start, meter)
    # ingest -> normalized over the windows without a host stall (cryptoflow/hostmeter.py): what the flow
    # does when the machine's CPUs are its own; the windows left out are counted
    host: dict = {}
    if meter is not None:
        host = {
            "ingest_to_normalized_unstalled": unstalled,
            "windows_stalled": sum(1 for w in windows if w.get("host_stall")),
            "host": host_summary(meter.meters),
        }
    cpu: dict = {}
    if cpu_start is not None and cpu_end is not None and normalized[1] and feed_start is not None:
        wall = max(normalized[0], feed_end or 0.0) - feed_start[0]
        used, waited = cpu_end[0] - cpu_start[0], cpu_end[1] - cpu_start[1]
        cpu = {"cpu_us_per_event": used / normalized[1] * 1e6, "cpu_share": used / wall if wall > 0 else None,
               "runqueue_wait_share": waited / wall if wall > 0 else None}  # fmt: skip
    return {
        "offered_changes_per_s": rate,
        "seconds": seconds,
        "symbols": symbols,
        "messages": messages,
        "achieved_changes_per_s": achieved,
        "achieved_frames_per_s": frames_per_s,  # written to the flow's socket
        # book events the flow normalized per second from the feed start until it had normalized the last
        # one (at most one 0.5 s scrape late; no earlier than the feed's end): the pregen generator does
        # not wait for the flow, so this is the flow's own pace
        "normalized_per_s": normalized_per_s,
        # offered, written and normalized at >= 95 % of the offer
        "sustained": bool(
            achieved
            and frames_per_s
            and normalized_per_s
            and min(achieved, frames_per_s, normalized_per_s) >= 0.95 * rate
        ),
        "book_frames_sent": sim.stats.frames_sent,  # written to a socket (the last writes may be missing)
        "generator": generator,
        "book_frames_made": sum(x.book_frames for x in venue.sessions),  # for all connections
        "connections": len(venue.sessions),  # one per source shard; more = reconnects (and resubscriptions)
        "events_seen_by_histogram": ingest.get("count", 0),  # feed events only (baseline subtracted)
        "exchange_to_ingest": exact_percentiles(to_ingest),
        "ingest_to_normalized": ingest,
        "ingest_to_normalized_windows": windows,
        **host,
        "exchange_to_normalized": histogram_percentiles(
            _minus(last.get("exchange", []), baseline.get("exchange", []))
        ),
        "ingest_to_committed": exact_percentiles(to_commit),
        # the worker's wait per epoch end for the sink's data files (whole run, incl. the warm-up)
        "sink_seal_wait": histogram_percentiles(last.get("seal", [])),
        "epoch_s": epoch_s or BYTEWAX_DEFAULT_EPOCH_S,
        "idle_poll_ms": idle_poll_ms or load_settings(environ=env).connector.idle_poll_ms,
        "switch_interval_ms": switch_interval_ms or load_settings(environ=env).runtime.switch_interval_ms,
        # the flow process from the feed start until it had normalized the last event: CPU time per event
        # (what the flow costs, whatever the machine's load), the CPU it got, and the time its threads sat
        # runnable waiting for a CPU (/proc schedstat; other processes on the machine): both per wall second
        "flow_cpu": cpu,
        "load_average": os.getloadavg()[0],
    }


def _plus(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Two cumulative histograms added bucket by bucket (an empty one adds nothing)."""
    if not a or not b:
        return a or b
    return [(le, x + y) for (le, x), (_, y) in zip(a, b, strict=True)]


def split_windows(
    timeline: list[tuple[float, list]],
    baseline: list[tuple[float, float]],
    feed_start: tuple[float, int] | None,
    meter: HostMeter | None,
) -> tuple[list[dict], dict]:
    """Ingest -> normalized per scrape window (when in the run the slow events were), each with the host
    meter's worst unit in it and whether it had a host stall; and the percentiles over the windows
    without one (empty without a meter)."""
    windows, kept, previous, since = [], [], baseline, 0.0
    factors = unit_factors(meter.meters) if meter is not None else []
    for at, buckets in timeline:
        delta = _minus(buckets, previous)
        window = histogram_percentiles(delta)
        if window.get("count"):
            if meter is not None and feed_start is not None:
                start, end = feed_start[0] + since, feed_start[0] + at
                factor, stalled = window_stalled(factors, start, end)
                window |= {"host_slowdown": round(factor, 1), "host_stall": stalled}
                if not stalled:
                    kept = _plus(kept, delta)
            windows.append({"at_s": round(at, 2), **window})
        previous, since = buckets, at
    return windows, histogram_percentiles(kept) if meter is not None else {}


def process_times(pid: int) -> tuple[float, float]:
    """(CPU seconds, run-queue wait seconds) summed over the process's threads, from
    /proc/<pid>/task/*/schedstat (Linux; zeros elsewhere). Threads that ended before are not counted."""
    cpu = wait = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                ran, waited, _ = (task / "schedstat").read_text().split()
                cpu, wait = cpu + int(ran), wait + int(waited)
    return cpu / 1e9, wait / 1e9


def _count(now: dict, before: dict) -> int:
    """Feed events the flow normalized: the histogram's total count minus the pre-feed baseline."""
    end, start = now.get("ingest", []), before.get("ingest", [])
    return int((end[-1][1] if end else 0) - (start[-1][1] if start else 0))


def _changes_sent(venue: KrakenV2SyntheticVenue | PacedKrakenV2Venue) -> int:
    return venue.changes_sent if isinstance(venue, PacedKrakenV2Venue) else venue.feed.changes_sent


async def _count_frames(url: str, symbols: list[str]) -> dict:
    """The trivial fast reader: subscribe, count book updates, sample send -> receive lag (every 16th)."""
    from datetime import datetime

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    frames, first, last, lags = 0, 0.0, 0.0, []
    async with connect(url, max_size=1 << 22, compression=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"method": "subscribe", "req_id": 1,
                                  "params": {"channel": "book", "symbol": symbols, "depth": 10}}))  # fmt: skip
        with contextlib.suppress(ConnectionClosed):
            async for msg in ws:
                if not msg.startswith('{"channel":"book","type":"update"'):
                    continue
                last = time.monotonic()
                first = first or last
                frames += 1
                if frames % 16 == 0:
                    sent = datetime.fromisoformat(msg[-31:-4].replace("Z", "+00:00")).timestamp()
                    lags.append(int((time.time() - sent) * 1_000_000))
    return {"frames": frames, "frames_per_s": frames / (last - first) if last > first else None,
            "send_to_receive": exact_percentiles(lags)}  # fmt: skip


def measure_generator(rate: float, seconds: float, symbols: int) -> dict:
    """The pre-generated paced venue alone, read by a counting websockets client in another process: the
    generator's own ceiling (rate 0 = as fast as it goes) or whether it holds an offered rate."""
    messages = int((rate or 50_000) * seconds)
    began = time.monotonic()
    venue = make_venue("pregen", rate, messages, symbols)
    pregen_s = time.monotonic() - began
    names = [f"S{i:04d}/USD" for i in range(symbols)]
    with ExchangeSimulator(venue, speed=0.0) as sim:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.latency", "--count-reader", f"{sim.ws_url}/v2", ",".join(names)],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=seconds * 10 + 60,
        )  # fmt: skip
    reader = json.loads(out.stdout)
    written = None
    if (
        venue.started_at is not None
        and venue.finished_at is not None
        and venue.finished_at > venue.started_at
    ):
        written = messages / (venue.finished_at - venue.started_at)
    return {"offered_frames_per_s": rate or "max", "messages": messages, "symbols": symbols,
            "pregenerate_s": pregen_s, "written_frames_per_s": written, "blocked_on_socket_s": venue.blocked_s,
            "reader": reader}  # fmt: skip


def measure(
    quick: bool = False, rates: tuple[float, ...] = (10_000, 50_000), **options: int | float | str | None
) -> dict:
    seconds, symbols = (3.0, 50) if quick else (10.0, 100)
    return {"flow": "dataflows.spot_ob -w 1", "venue": "synthetic kraken v2, book depth 10",
            "runs": [run_rate(r, seconds, symbols, **options) for r in rates]}  # fmt: skip


def _fmt(p: dict, key: str = "max_ms") -> str:
    if not p.get("count"):
        return "no samples"
    mx = p.get("max_ms", p.get("max_le_ms"))
    bound = "<=" if "max_le_ms" in p else ""
    within = f", {p['within_2ms']:.2%} within 2 ms" if "within_2ms" in p else ""
    return (
        f"p50 {p['p50_ms']:.2f}  p90 {p['p90_ms']:.2f}  p99 {p['p99_ms']:.2f}  max {bound}{mx:.2f} ms "
        f"(n={p['count']:,}{within})"
    )


def print_report(m: dict, timeline: bool = False) -> None:
    print(f"latency, {m['flow']}, {m['venue']}")
    for r in m["runs"]:
        ach = r["achieved_changes_per_s"]
        print(f"offered {r['offered_changes_per_s']:,.0f} changes/s for {r['seconds']:.0f} s, {r['symbols']} symbols: "
              f"achieved {ach or 0:,.0f} changes/s, {r['achieved_frames_per_s'] or 0:,.0f} frames/s written, "
              f"{r['normalized_per_s'] or 0:,.0f} events/s normalized "
              f"({'sustained' if r['sustained'] else 'NOT sustained'}); {r['book_frames_made']:,} book frames made "
              f"on {r['connections']} connection(s), the flow's histogram saw {r['events_seen_by_histogram']:,} "
              "book events")  # fmt: skip
        print(f"  exchange -> ingest:     {_fmt(r['exchange_to_ingest'])}")
        print(f"  ingest -> normalized:   {_fmt(r['ingest_to_normalized'])}")
        if timeline:
            for w in r.get("ingest_to_normalized_windows", []):
                host = (
                    f"; host {w['host_slowdown']:.1f}x{', stall' if w['host_stall'] else ''}"
                    if "host_stall" in w
                    else ""
                )
                print(f"    at {w['at_s']:5.1f} s: {_fmt(w)}{host}")
        if "host" in r:
            print(f"    without host stalls:  {_fmt(r['ingest_to_normalized_unstalled'])}")
            print(f"    {host_stalls_sentence(r)}")
        print(f"  exchange -> normalized: {_fmt(r['exchange_to_normalized'])}")
        c = r["flow_cpu"]
        if c:
            print(f"  flow process: {c['cpu_us_per_event']:.1f} µs CPU per event, CPU {c['cpu_share']:.0%} and "
                  f"waiting for a CPU {c['runqueue_wait_share']:.0%} of the wall time (load average "
                  f"{r['load_average']:.1f})")  # fmt: skip
        print(f"  sink seal wait / epoch: {_fmt(r.get('sink_seal_wait', {}))}")
        print(f"  ingest -> committed:    {_fmt(r['ingest_to_committed'])} "
              f"(epoch {r['epoch_s']:g} s, connector.idle_poll_ms {r['idle_poll_ms']})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per rate, 50 symbols")
    parser.add_argument(
        "--rates", default="10000,50000", help="offered book changes per second, comma-separated"
    )
    parser.add_argument(
        "--epoch-s", type=int, help="the flow's Bytewax epoch in seconds, one commit each (default 10)"
    )
    parser.add_argument(
        "--idle-poll-ms", type=int, help="connector.idle_poll_ms for the flow (default: config)"
    )
    parser.add_argument(
        "--switch-interval-ms", type=float, help="runtime.switch_interval_ms for the flow (default: config)"
    )
    parser.add_argument("--shards", type=int, help="sharding.total_shards for the flow (default: config)")
    parser.add_argument(
        "--client-loop",
        choices=("worker", "shared", "per_client"),
        help="connector.client_loop (default: config)",
    )
    parser.add_argument(
        "--generator", choices=("pregen", "live"), default="pregen", help="load generator (default pregen)"
    )
    parser.add_argument(
        "--generator-only", action="store_true", help="the generator alone into a counting reader"
    )
    parser.add_argument("--count-reader", nargs=2, metavar=("URL", "SYMBOLS"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--py-spy", metavar="OUT", help="run the flow under `py-spy record --threads --idle` into OUT (raw)"
    )
    parser.add_argument(
        "--py-spy-gil", action="store_true", help="with --py-spy: only samples of the thread holding the GIL"
    )
    parser.add_argument(
        "--timeline", action="store_true", help="also print ingest -> normalized per 0.5 s scrape window"
    )
    parser.add_argument(
        "--flow-cpus",
        metavar="LIST",
        help="pin the flow process to these cores (taskset list, e.g. 1) and the generator to the others, "
        "as a remote exchange would not share the flow's cores",
    )
    parser.add_argument(
        "--no-host-meter",
        action="store_true",
        help="run without the host-stall meter (cryptoflow/hostmeter.py, ~1 %% of a core per CPU)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.count_reader:
        import asyncio

        url, symbols = args.count_reader
        print(json.dumps(asyncio.run(_count_frames(url, symbols.split(",")))))
        return
    rates = tuple(float(r) for r in args.rates.split(","))
    if args.generator_only:
        seconds, symbols = (3.0, 50) if args.quick else (10.0, 100)
        for rate in rates:
            print(json.dumps(measure_generator(rate, seconds, symbols)))
        return
    m = measure(args.quick, rates, epoch_s=args.epoch_s, idle_poll_ms=args.idle_poll_ms,
                switch_interval_ms=args.switch_interval_ms, generator=args.generator, shards=args.shards,
                py_spy=args.py_spy, py_spy_gil=args.py_spy_gil, client_loop=args.client_loop,
                flow_cpus=args.flow_cpus, host_meter=not args.no_host_meter)  # fmt: skip
    if args.json:
        print(json.dumps(m, indent=2))
    else:
        print_report(m, timeline=args.timeline)


if __name__ == "__main__":
    main()
