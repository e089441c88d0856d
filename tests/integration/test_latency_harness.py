"""The latency benchmark really measures the pipeline: a short paced run through `dataflows.spot_ob`
commits rows, the flow's normalize histogram counts the feed's frames, and every reported distribution
is coherent. No timing is asserted."""

from __future__ import annotations

import pytest

from benchmarks.latency import run_rate
from benchmarks.report import _book_and_latency

pytestmark = pytest.mark.integration


def test_short_paced_run_reports_every_stage() -> None:
    r = run_rate(rate=300, seconds=1.0, symbols=4)
    assert r["messages"] == 300 and r["book_frames_sent"] >= 1
    # scraped while the flow runs: it can miss the last frames, never count more than were made (plus the
    # snapshots of a resubscription)
    assert 0 < r["events_seen_by_histogram"] <= r["book_frames_made"] + r["symbols"] * r["connections"]
    for stage in (
        "exchange_to_ingest",
        "ingest_to_normalized",
        "exchange_to_normalized",
        "ingest_to_committed",
    ):
        p = r[stage]
        assert p["count"] >= 1, stage
        top = p.get("max_ms", p.get("max_le_ms"))
        assert 0 <= p["p50_ms"] <= p["p90_ms"] <= p["p99_ms"] <= top, (stage, p)
    assert r["achieved_changes_per_s"] is not None and r["achieved_frames_per_s"] is not None


def test_the_host_meter_splits_the_windows_of_a_real_run() -> None:
    """The run's windows carry the host meter's verdict, the calm percentiles count exactly the calm
    windows' events, and the Markdown report shows both rows and the meter's sentence."""
    r = run_rate(rate=300, seconds=1.5, symbols=4)
    windows = r["ingest_to_normalized_windows"]
    assert windows and all("host_stall" in w and w["host_slowdown"] >= 0 for w in windows)
    assert r["windows_stalled"] == sum(w["host_stall"] for w in windows)
    calm = sum(w["count"] for w in windows if not w["host_stall"])
    assert r["ingest_to_normalized_unstalled"].get("count", 0) == calm
    assert r["host"]["units"] > 0 and r["host"]["cpus"]
    markdown = "\n".join(_book_and_latency({"latency": {"venue": "v", "flow": "f", "runs": [r]}}))
    assert "| ingest -> normalized, windows without a host stall |" in markdown
    assert f"{r['windows_stalled']} of {len(windows)} 0.5 s windows left out of the second row." in markdown
