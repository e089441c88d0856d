"""The host-stall meter really runs: one process per usable CPU, each bound to its CPU before the block
starts (HostMeter waits for it), each reporting units with increasing timestamps inside the block and a
positive CPU cost. No timing is asserted (a stall may or may not happen during the test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from cryptoflow.hostmeter import PERIOD_S, HostMeter, summary

pytestmark = pytest.mark.integration


def test_one_bound_meter_per_cpu_reports_its_units() -> None:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    with HostMeter() as meter:
        if cpus is not None:
            for pid in meter.pids:
                bound = os.sched_getaffinity(pid)
                assert len(bound) == 1, bound
        started = time.monotonic()
        time.sleep(0.8)
        ended = time.monotonic()
    expected = [str(c) for c in cpus] if cpus is not None else ["any"]
    assert sorted(meter.meters) == sorted(expected)
    for label, samples in meter.meters.items():
        times = [t for t, _ in samples]
        assert times == sorted(times), label
        inside = [t for t in times if started <= t <= ended]
        assert len(inside) >= 0.8 / PERIOD_S / 4, (label, len(inside))  # a unit every ~20 ms, even if slow
        assert all(ns > 0 for _, ns in samples), label
    s = summary(meter.meters)
    assert s["units"] == sum(len(x) for x in meter.meters.values())
    assert 0 <= s["stalled_units"] <= s["units"] and s["episodes"] <= s["stalled_units"]


def test_the_cli_measures_and_reports_as_json() -> None:
    """`cryptoflow host-stalls` as an operator runs it: a real run, a well-formed report; a bad duration
    is refused with a message."""
    done = subprocess.run([sys.executable, "-m", "cryptoflow.cli", "host-stalls", "--seconds", "0.5", "--json"],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    report = json.loads(done.stdout)
    assert report["seconds"] == 0.5 and report["units"] >= len(report["cpus"])
    assert report["episodes"] == len(report["episode_list"]) <= report["stalled_units"]
    bad = subprocess.run([sys.executable, "-m", "cryptoflow.cli", "host-stalls", "--seconds", "0"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "must be more than 0 seconds" in bad.stderr
