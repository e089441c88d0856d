"""The host-stall meter's arithmetic (cryptoflow/hostmeter.py) and how the latency benchmark uses it to
split its windows: which units count as stalls, which windows a stall spoils, and that the percentiles
without the stalled windows are those of the calm windows' events alone. Synthetic samples; no timing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.latency import _plus, histogram_percentiles, split_windows
from benchmarks.report import host_stalls_sentence
from cryptoflow import hostmeter
from cryptoflow.hostmeter import (
    episodes,
    format_text,
    stalled,
    summary,
    unit_factors,
    window_stalled,
    worst_factor,
)

UNIT_NS = 200_000


def _meter(start: float, n: int, slow: dict[int, float]) -> hostmeter.Samples:
    """A unit every 10 ms from `start`; unit i charged `slow[i]` times the usual cost."""
    return [(start + i * 0.01, int(UNIT_NS * slow.get(i, 1.0))) for i in range(n)]


def test_only_units_charged_the_stall_factor_count() -> None:
    samples = _meter(0.0, 100, {10: 3.9, 20: 4.0, 30: 12.5})
    assert [(round(t, 2), f, cpu) for t, f, cpu in stalled(unit_factors({"0": samples}))] == [
        (0.2, 4.0, "0"),
        (0.3, 12.5, "0"),
    ]
    assert stalled(unit_factors({"0": []})) == []


def test_worst_factor_looks_at_every_meter_inside_the_window_only() -> None:
    factors = unit_factors({"0": _meter(0.0, 100, {50: 6.0}), "1": _meter(0.005, 100, {52: 9.0})})
    assert worst_factor(factors, 0.4, 0.6) == pytest.approx(9.0)
    assert worst_factor(factors, 0.0, 0.45) == pytest.approx(1.0)
    assert worst_factor(unit_factors({"0": []}), 0.0, 1.0) == 0.0


def test_a_stall_spoils_its_window_and_the_next_one_it_spills_into() -> None:
    factors = unit_factors({"0": _meter(0.0, 200, {49: 10.0})})  # a stall ending at 0.49 s
    assert window_stalled(factors, 0.0, 0.5) == (pytest.approx(10.0), True)
    factor, spoiled = window_stalled(factors, 0.5, 1.0)  # its events are normalized after it
    assert spoiled and factor == pytest.approx(1.0)
    assert window_stalled(factors, 0.6, 1.1)[1] is False  # more than SPILL_S later: calm


def test_summary_groups_stalled_units_into_episodes() -> None:
    meters = {"0": _meter(0.0, 300, {10: 5.0, 11: 8.0, 200: 4.5}), "1": _meter(0.0, 300, {12: 6.0})}
    s = summary(meters)
    assert s["units"] == 600 and s["stalled_units"] == 4 and s["episodes"] == 2
    assert s["worst_factor"] == 8.0 and s["unit_cpu_us"] == {"0": 200.0, "1": 200.0}
    assert s["cpus"] == ["0", "1"]


def _buckets(counts: list[int]) -> list[tuple[float, float]]:
    """Cumulative buckets (1 ms, 2 ms, 5 ms, 25 ms, +inf) of per-bucket counts."""
    out, total = [], 0
    for le, c in zip((0.001, 0.002, 0.005, 0.025, float("inf")), counts, strict=True):
        total += c
        out.append((le, float(total)))
    return out


def _cumulate(*windows: list[int]) -> list[list[tuple[float, float]]]:
    run, out = [0] * 5, []
    for w in windows:
        run = [a + b for a, b in zip(run, w, strict=True)]
        out.append(_buckets(run))
    return out


def test_the_calm_percentiles_are_those_of_the_calm_windows_alone() -> None:
    calm_a, stalled, calm_b = [900, 100, 0, 0, 0], [100, 100, 300, 500, 0], [950, 50, 0, 0, 0]
    scrapes = _cumulate(calm_a, stalled, calm_b)
    timeline = [(0.5, scrapes[0]), (1.0, scrapes[1]), (1.6, scrapes[2])]
    feed_start = 100.0
    meter = SimpleNamespace(meters={"0": _meter(feed_start, 170, {80: 12.0})})  # a stall at 0.8 s
    windows, calm = split_windows(timeline, _buckets([0] * 5), (feed_start, 0), meter)
    assert [w["host_stall"] for w in windows] == [False, True, False]
    assert windows[1]["host_slowdown"] == 12.0 and windows[1]["count"] == 1000
    expected = histogram_percentiles(_buckets([a + b for a, b in zip(calm_a, calm_b, strict=True)]))
    assert calm == expected and calm["count"] == 2000 and calm["within_2ms"] == 1.0
    everything = histogram_percentiles(scrapes[-1])
    assert everything["p99_ms"] > 5.0 > 2.0 > calm["p99_ms"]


def test_without_a_meter_windows_carry_no_host_fields() -> None:
    scrapes = _cumulate([10, 0, 0, 0, 0], [5, 5, 0, 0, 0])
    windows, calm = split_windows([(0.5, scrapes[0]), (1.0, scrapes[1])], [], (0.0, 0), None)
    assert calm == {} and [w["count"] for w in windows] == [10, 10]
    assert all("host_stall" not in w for w in windows)


def test_plus_adds_cumulative_buckets_and_an_empty_side_adds_nothing() -> None:
    a, b = _buckets([1, 2, 3, 0, 0]), _buckets([4, 0, 0, 1, 0])
    assert _plus(a, b) == _buckets([5, 2, 3, 1, 0])
    assert _plus([], b) == b and _plus(a, []) == a


def test_the_sentence_says_how_many_windows_were_left_out() -> None:
    run = {
        "host": summary({"0": _meter(0.0, 100, {5: 9.0})}),
        "windows_stalled": 1,
        "ingest_to_normalized_windows": [{}, {}, {}],
    }
    said = host_stalls_sentence(run)
    assert "1 of 100 meter units" in said and "worst 9x" in said and "1 of 3 0.5 s windows" in said


def test_episodes_group_both_cpus_and_measure_their_length() -> None:
    meters = {"0": _meter(0.0, 300, {10: 5.0, 11: 8.0, 13: 6.0}), "1": _meter(0.0, 300, {12: 9.0, 200: 4.5})}
    found = episodes(unit_factors(meters))
    assert [e["cpus"] for e in found] == [["0", "1"], ["1"]]
    first, second = found
    assert first["start"] == pytest.approx(0.10) and first["worst_factor"] == 9.0
    assert first["length_ms"] == round((0.13 - 0.10 + hostmeter.PERIOD_S) * 1000)
    assert second["start"] == pytest.approx(2.0) and second["length_ms"] == round(hostmeter.PERIOD_S * 1000)
    assert episodes(unit_factors({"0": _meter(0.0, 50, {})})) == []


def test_the_operator_report_gives_a_verdict_and_each_episode() -> None:
    calm = {"seconds": 5.0, **summary({"0": _meter(0.0, 100, {})}), "episode_list": []}
    assert format_text(calm).endswith("no host stall seen.")
    meters = {"0": _meter(0.0, 100, {40: 11.0})}
    report = {"seconds": 5.0, **summary(meters), "episode_list": episodes(unit_factors(meters))}
    text = format_text(report)
    assert "1 of 100 units" in text and "1 episode(s), worst 11x" in text and "not the collector's" in text
    assert text.splitlines()[-1].strip().startswith("at    0.40 s: ~20 ms, worst 11x, CPUs 0")
