"""The host-stall meter really runs: one process per usable CPU, each bound to its CPU before the block
starts (HostMeter waits for it), each reporting units with increasing timestamps inside the block and a
positive CPU cost. No timing is asserted (a stall may or may not happen during the test)."""

from __future__ import annotations

import os
import time

import pytest

from benchmarks.hiccups import PERIOD_S, HostMeter, summary

pytestmark = pytest.mark.integration


def test_one_bound_meter_per_cpu_reports_its_units() -> None:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    with HostMeter() as meter:
        if cpus is not None:
            for _, proc, _ in meter._procs:
                bound = os.sched_getaffinity(proc.pid)
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
