"""The benchmark's end-to-end drivers really run the pipeline: every row they time lands in Iceberg,
counted against the corpus's ground truth (itself checked against the recording in the unit tests).
No timing is asserted."""

from __future__ import annotations

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


def test_simulator_driver_runs_spot_delta_unchanged_and_commits_expected_rows() -> None:
    corpus = load_binance("binance-spot", reps=3)
    result = run_simulated(corpus)
    assert result.exit_code == 0
    assert result.rows_committed == corpus.expected_rows
