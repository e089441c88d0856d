"""The latency benchmark really measures the pipeline: a short paced run through `dataflows.spot_ob`
commits rows, the flow's normalize histogram counts the feed's frames, and every reported distribution
is coherent. No timing is asserted."""

from __future__ import annotations

import pytest

from benchmarks.latency import run_rate

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
