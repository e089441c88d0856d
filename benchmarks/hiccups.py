"""Host stalls: when the machine's own CPUs were taken away from everything running on them.

Why: on a shared virtual machine the host can run the virtual CPUs at a small fraction of real time for
tens of milliseconds. On this project's 2-core VM, idle, a fixed unit of pure-Python work was charged
9-14x its usual CPU on both CPUs at once through episodes of 20-100 ms (from none for seconds to one
every 2 s); during a latency run such a unit was charged 10-14x in every 0.5 s window whose p99 passed
5 ms, and at most 1.8x in the others (docs/benchmarks.md, round 17). No process in the VM can avoid
such an episode, so a latency tail made of them is the machine's, not the flow's. The latency
benchmark runs this meter beside the flow and reports its percentiles both over all windows and over
the windows without a stall.

How: one meter process per usable CPU, bound to it, runs a fixed unit of work every `PERIOD_S` and
records the CPU time its thread was charged for it (`time.thread_time_ns`). Waiting in the VM's own
run-queue is not charged; a virtual CPU that the host preempts in the middle of a unit is (the guest
cannot tell the difference), so a unit charged `STALL_FACTOR` times the meter's median marks a host
stall. jHiccup measures a platform's pauses the same way, beside the application. The meters cost
about 1 % of a core each.

`python -m benchmarks.hiccups --seconds 20` runs the meters alone and prints what they saw.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[1]
# one unit per 20 ms: an episode of 20 ms or more is seen on each CPU; a shorter one may be missed,
# which leaves its window among the calm ones (the calm figure can only come out worse). At 10 ms (2 %
# of a core each) the flow's 50k runs were sustained in 1 of 3 against 2 of 3 without the meters: most
# likely noise, but halving the cost loses little.
PERIOD_S = 0.02
UNIT_N = 8_000  # sum(range(UNIT_N)): ~200 µs of CPU on this machine when the host leaves it alone
STALL_FACTOR = 4.0  # a unit charged this many times the meter's median: the host took the CPU
# a window counts as stalled when a stall ended inside it or this long before it began: events
# delayed by a stall are observed after it, when the flow has caught up
SPILL_S = 0.1
EPISODE_GAP_S = 0.1  # stalled units closer than this belong to one episode

Samples = list[tuple[float, int]]  # (time.monotonic() at the unit's end, CPU ns the unit was charged)


def run_meter(cpu: int | None, out: Path, max_seconds: float) -> None:
    """Units until SIGTERM (or `max_seconds`), then the samples as JSON into `out`."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    print("ready", flush=True)  # bound: HostMeter waits for this line
    samples: Samples = []
    end = time.monotonic() + max_seconds
    while not stop and time.monotonic() < end:
        started = time.thread_time_ns()
        sum(range(UNIT_N))
        samples.append((time.monotonic(), time.thread_time_ns() - started))
        time.sleep(PERIOD_S)
    out.write_text(json.dumps({"cpu": cpu, "samples": samples}))


def stalled_units(samples: Samples, factor: float = STALL_FACTOR) -> list[tuple[float, float]]:
    """(time, charged / median) of the units charged at least `factor` times the meter's median."""
    if not samples:
        return []
    median = statistics.median(ns for _, ns in samples)
    return [(t, ns / median) for t, ns in samples if ns >= factor * median]


def worst_factor(meters: dict[str, Samples], start: float, end: float) -> float:
    """The largest charged / median of any meter's units that ended in (start, end]; 0 without units."""
    worst = 0.0
    for samples in meters.values():
        if samples:
            median = statistics.median(ns for _, ns in samples)
            worst = max([worst, *(ns / median for t, ns in samples if start < t <= end)])
    return worst


def window_stalled(meters: dict[str, Samples], start: float, end: float) -> tuple[float, bool]:
    """(worst factor in the window, whether a stall ended in it or within `SPILL_S` before it)."""
    return worst_factor(meters, start, end), worst_factor(meters, start - SPILL_S, end) >= STALL_FACTOR


def summary(meters: dict[str, Samples]) -> dict:
    """What the meters saw: units, each meter's median unit, stalled units, episodes, the worst factor."""
    stalls = sorted(s for samples in meters.values() for s in stalled_units(samples))
    episodes = sum(1 for i, (t, _) in enumerate(stalls) if i == 0 or t - stalls[i - 1][0] > EPISODE_GAP_S)
    return {
        "cpus": sorted(meters),
        "period_s": PERIOD_S,
        "stall_factor": STALL_FACTOR,
        "units": sum(len(s) for s in meters.values()),
        "unit_cpu_us": {
            cpu: round(statistics.median(ns for _, ns in s) / 1e3, 1) for cpu, s in meters.items() if s
        },
        "stalled_units": len(stalls),
        "episodes": episodes,
        "worst_factor": round(max((f for _, f in stalls), default=0.0), 1),
    }


def describe(run: dict) -> str:
    """What the meters saw during a latency run (`benchmarks.latency.run_rate`), in words."""
    h, windows = run["host"], run["ingest_to_normalized_windows"]
    return (
        f"host stalls (benchmarks/hiccups.py): {h['stalled_units']} of {h['units']:,} meter units charged "
        f">= {h['stall_factor']:g}x their median CPU ({h['episodes']} episode(s), worst {h['worst_factor']:g}x) "
        f"on CPUs {', '.join(h['cpus'])}; {run['windows_stalled']} of {len(windows)} 0.5 s windows left out"
    )


class HostMeter:
    """The meters as a context manager: one process per usable CPU while the block runs; `meters`
    (CPU label -> samples) is filled when it ends."""

    def __init__(self, max_seconds: float = 3600.0) -> None:
        self.max_seconds = max_seconds
        self.meters: dict[str, Samples] = {}
        self._procs: list[tuple[str, subprocess.Popen, Path]] = []
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> HostMeter:
        self._tmp = tempfile.TemporaryDirectory(prefix="cryptoflow-hiccups-")
        cpus: list[int | None] = (
            sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [None]
        )
        for cpu in cpus:
            label = "any" if cpu is None else str(cpu)
            out = Path(self._tmp.name) / f"meter-{label}.json"
            cmd = [sys.executable, "-m", "benchmarks.hiccups", "--meter", label, "--out", str(out),
                   "--seconds", str(self.max_seconds)]  # fmt: skip
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
            self._procs.append((label, proc, out))
        for label, proc, _ in self._procs:  # every meter bound and measuring before the block runs
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                self.__exit__(None, None, None)
                raise RuntimeError(f"the host meter for CPU {label} did not start (exit code {proc.poll()})")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for _, proc, _ in self._procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for label, proc, out in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            with contextlib.suppress(OSError, ValueError):
                self.meters[label] = [(t, ns) for t, ns in json.loads(out.read_text())["samples"]]
        if self._tmp is not None:
            self._tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to measure (default 20)")
    parser.add_argument("--meter", help=argparse.SUPPRESS)  # one meter process: its CPU, or "any"
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.meter is not None:
        run_meter(None if args.meter == "any" else int(args.meter), args.out, args.seconds)
        return
    with HostMeter() as meter:
        time.sleep(args.seconds)
    print(json.dumps(summary(meter.meters), indent=2))


if __name__ == "__main__":
    main()
