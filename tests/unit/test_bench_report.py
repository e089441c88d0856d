"""The e2e sentence of the benchmark report: the sink child's share of the CPU when the run measured it."""

from __future__ import annotations

from benchmarks.report import _cpu_sentence


def test_the_sink_childs_share_is_reported_when_measured() -> None:
    sentence = _cpu_sentence({"cpu_per_wall": {"median": 1.27}, "child_cpu_per_wall": {"median": 0.41}})
    assert "1.27 CPU-seconds per second, 0.41 of them its sink child's" in sentence


def test_an_older_report_without_it_still_renders() -> None:
    sentence = _cpu_sentence({"cpu_per_wall": {"median": 1.02}})
    assert "1.02 CPU-seconds per second" in sentence and "child" not in sentence
