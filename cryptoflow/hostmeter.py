"""Host stalls: when the machine's own CPUs were taken away from everything running on them.

Why: on a shared virtual machine the host can run the virtual CPUs at a small fraction of real time for
tens of milliseconds. On this project's 2-core VM, idle, a fixed unit of pure-Python work was charged
9-14x its usual CPU on both CPUs at once through episodes of 20-100 ms (from none for seconds to about
one a second); during a latency run such a unit was charged 10-14x in every 0.5 s window whose p99 passed
5 ms, and at most 1.8x in the others (docs/benchmarks.md, round 17). No process on the machine can
avoid such an episode, so a latency tail made of them is the machine's, not the collector's.
`cryptoflow host-stalls` measures a node for an operator; the latency benchmark runs the same meters
beside the flow.

How: one meter process per usable CPU, bound to it, runs a fixed unit of work every `PERIOD_S` and
records the CPU time its thread was charged for it (`time.thread_time_ns`). Waiting in the machine's
own run-queue is not charged; a virtual CPU that the host preempts in the middle of a unit is (the
guest cannot tell the difference), so a unit charged `STALL_FACTOR` times the meter's median marks a
host stall. jHiccup measures a platform's pauses the same way, beside the application. A container's
CPU quota is not seen: throttling stops the threads rather than charging them (the cgroup's `cpu.stat`
counts it as `nr_throttled`). The meters cost about 1 % of a core each.
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

# one unit per 20 ms: an episode of 20 ms or more is seen on each CPU; a shorter one may be missed,
# which leaves its window among the calm ones (the calm figure can only come out worse). At 10 ms (2 %
# of a core each) the flow's 50k runs were sustained in 1 of 3 against 2 of 3 without the meters: most
# likely noise, but halving the cost loses little.
PERIOD_S = 0.02
UNIT_N = 8_000  # sum(range(UNIT_N)): ~200 µs of CPU on the development machine when the host leaves it alone
STALL_FACTOR = 4.0  # a unit charged this many times the meter's median: the host took the CPU
WARM_UP_UNITS = 5  # run, not recorded, before the meter says it is ready
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
    for _ in range(WARM_UP_UNITS):  # a new process's first units fault pages in: not the host's doing
        sum(range(UNIT_N))
    print("ready", flush=True)  # bound and warm: HostMeter waits for this line
    samples: Samples = []
    end = time.monotonic() + max_seconds
    while not stop and time.monotonic() < end:
        started = time.thread_time_ns()
        sum(range(UNIT_N))
        samples.append((time.monotonic(), time.thread_time_ns() - started))
        time.sleep(PERIOD_S)
    out.write_text(json.dumps({"cpu": cpu, "samples": samples}))


Factors = list[tuple[float, float, str]]  # (time, charged / its meter's median, CPU label), in time order


def unit_factors(meters: dict[str, Samples]) -> Factors:
    """Every unit of every meter as a multiple of its meter's median unit (each median computed once)."""
    out: Factors = []
    for cpu, samples in meters.items():
        if samples:
            median = statistics.median(ns for _, ns in samples)
            out += [(t, ns / median, cpu) for t, ns in samples]
    return sorted(out)


def stalled(factors: Factors) -> Factors:
    """The units charged at least `STALL_FACTOR` times their meter's median."""
    return [u for u in factors if u[1] >= STALL_FACTOR]


def worst_factor(factors: Factors, start: float, end: float) -> float:
    """The largest factor of the units that ended in (start, end]; 0 without units."""
    return max((f for t, f, _ in factors if start < t <= end), default=0.0)


def window_stalled(factors: Factors, start: float, end: float) -> tuple[float, bool]:
    """(worst factor in the window, whether a stall ended in it or within `SPILL_S` before it)."""
    return worst_factor(factors, start, end), worst_factor(factors, start - SPILL_S, end) >= STALL_FACTOR


def episodes(factors: Factors) -> list[dict]:
    """Stalled units of every meter grouped in time: each episode's start (the first stalled unit's end,
    `time.monotonic()`), its length as the meters saw it (first to last stalled unit, plus one period),
    its worst factor and the CPUs it hit."""
    out: list[dict] = []
    for t, f, cpu in stalled(factors):
        if out and t - out[-1]["last"] <= EPISODE_GAP_S:
            e = out[-1]
            e["last"], e["worst_factor"] = t, max(e["worst_factor"], f)
            e["cpus"].add(cpu)
        else:
            out.append({"start": t, "last": t, "worst_factor": f, "cpus": {cpu}})
    return [
        {"start": e["start"], "length_ms": round((e["last"] - e["start"] + PERIOD_S) * 1000),
         "worst_factor": round(e["worst_factor"], 1), "cpus": sorted(e["cpus"])}
        for e in out
    ]  # fmt: skip


def summary(meters: dict[str, Samples]) -> dict:
    """What the meters saw: units, each meter's median unit, stalled units, episodes, the worst factor."""
    factors = unit_factors(meters)
    stalls = stalled(factors)
    return {
        "cpus": sorted(meters),
        "period_s": PERIOD_S,
        "stall_factor": STALL_FACTOR,
        "units": len(factors),
        "unit_cpu_us": {
            cpu: round(statistics.median(ns for _, ns in s) / 1e3, 1) for cpu, s in meters.items() if s
        },
        "stalled_units": len(stalls),
        "episodes": len(episodes(factors)),
        "worst_factor": round(max((f for _, f, _ in stalls), default=0.0), 1),
    }


class HostMeter:
    """The meters as a context manager: one process per usable CPU while the block runs (each bound
    before the block starts); `meters` (CPU label -> samples) is filled when it ends."""

    def __init__(self, max_seconds: float = 3600.0) -> None:
        self.max_seconds = max_seconds
        self.meters: dict[str, Samples] = {}
        self._procs: list[tuple[str, subprocess.Popen, Path]] = []
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def pids(self) -> list[int]:
        """The meter processes, one per CPU."""
        return [proc.pid for _, proc, _ in self._procs]

    def __enter__(self) -> HostMeter:
        self._tmp = tempfile.TemporaryDirectory(prefix="cryptoflow-hostmeter-")
        cpus: list[int | None] = (
            sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [None]
        )
        for cpu in cpus:
            label = "any" if cpu is None else str(cpu)
            out = Path(self._tmp.name) / f"meter-{label}.json"
            cmd = [sys.executable, "-m", "cryptoflow.hostmeter", "--meter", label, "--out", str(out),
                   "--seconds", str(self.max_seconds)]  # fmt: skip
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
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


def measure(seconds: float, progress: bool = False) -> dict:
    """`seconds` of the meters alone: the summary plus each episode, its start in seconds from the start."""
    began = time.monotonic()
    with HostMeter(max_seconds=seconds + 60) as meter:
        end = began + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 5.0))
            if progress and left > 5.0:
                print(f"  {time.monotonic() - began:4.0f} s of {seconds:g}", file=sys.stderr, flush=True)
    found = episodes(unit_factors(meter.meters))
    for e in found:
        e["start"] = round(e["start"] - began, 2)
    return {"seconds": seconds, **summary(meter.meters), "episode_list": found}


def format_text(report: dict) -> str:
    """The operator's view: a verdict, then one line per episode."""
    units = report["units"]
    head = (
        f"{report['seconds']:g} s on CPUs {', '.join(report['cpus'])}: {report['stalled_units']} of {units:,} "
        f"units of work were charged >= {report['stall_factor']:g}x their usual CPU time"
    )
    if not report["episode_list"]:
        return head + ": no host stall seen."
    lines = [
        head + f", in {report['episodes']} episode(s), worst {report['worst_factor']:g}x.",
        "During an episode the host ran this machine's CPUs at a fraction of real time: every process on",
        "it, the collector included, fell behind for that long. Latency spikes at these moments are the",
        "host's (a busy or oversubscribed hypervisor), not the collector's.",
    ]
    lines += [
        f"  at {e['start']:7.2f} s: ~{e['length_ms']} ms, worst {e['worst_factor']:g}x, CPUs {', '.join(e['cpus'])}"
        for e in report["episode_list"]
    ]
    return "\n".join(lines)


def main() -> None:
    """One meter process (`--meter CPU --out FILE`, as HostMeter starts it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meter", required=True, help="the CPU to bind to, or 'any'")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=3600.0)
    args = parser.parse_args()
    run_meter(None if args.meter == "any" else int(args.meter), args.out, args.seconds)


if __name__ == "__main__":
    main()
