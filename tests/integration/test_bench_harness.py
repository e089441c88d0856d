"""The benchmark's end-to-end drivers really run the pipeline: every row they time lands in Iceberg,
counted against the corpus's ground truth (itself checked against the recording in the unit tests).
No timing is asserted."""

from __future__ import annotations

import os

import pytest

from benchmarks.corpus import load_binance
from benchmarks.ours_inproc import run_inproc
from benchmarks.ours_simulator import run_simulated

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["binance-spot", "binance-usdm"])
def test_inproc_driver_commits_exactly_the_expected_rows(name: str) -> None:
    corpus = load_binance(name, reps=3)
    result = run_inproc(corpus)
    assert result.frames == len(corpus.frames)
    assert result.commits >= 1
    assert result.rows_committed == corpus.snapshot_levels + corpus.applied_levels
    assert result.valid
    assert 0 < result.child_cpu_per_wall < result.cpu_per_wall  # the sink child wrote the files


def test_simulator_driver_runs_spot_delta_unchanged_and_commits_expected_rows() -> None:
    corpus = load_binance("binance-spot", reps=3)
    result = run_simulated(corpus)
    assert result.exit_code == 0
    assert result.rows_committed == corpus.expected_rows


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="binding to a core needs sched_setaffinity")
def test_process_benchmark_binds_each_process_and_its_sink_child_to_one_core() -> None:
    """`make bench` reports 1 vs 2 processes with a core each too: the binding must really hold for the
    flow process and for the sink child it forks, or that row measures the unbound case again."""
    from benchmarks.run import HEADLINE, _procs

    core = max(os.sched_getaffinity(0))
    [bound] = _procs(HEADLINE, 3, 1, [core])
    [unbound] = _procs(HEADLINE, 3, 1)
    assert bound["valid"] and unbound["valid"]
    assert (bound["cores"], bound["child_cores"]) == (1, 1)
    assert unbound["cores"] == unbound["child_cores"] == len(os.sched_getaffinity(0))
