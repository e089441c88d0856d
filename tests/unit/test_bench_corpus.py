"""The benchmark corpus: repeated recordings must stay one contiguous, fully applicable stream per book,
and its ground-truth counts must agree with the recording counted independently (stdlib json)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from benchmarks.corpus import bybit_book_frames, load_binance, other_venue_frames
from benchmarks.profiling import summarize
from tests.support.recording_truth import binance_snapshots, binance_spot_expected_levels


@pytest.mark.parametrize("name", ["binance-spot", "binance-usdm"])
def test_repetitions_continue_each_book_without_gaps(name: str) -> None:
    corpus = load_binance(name, reps=3)
    last: dict[str, dict] = {}
    for text in corpus.frames:
        data = json.loads(text)["data"]
        prev = last.get(data["s"])
        if prev is not None:
            if name == "binance-spot":
                assert data["U"] == prev["u"] + 1
            else:
                assert data["pu"] == prev["u"]
            assert data["E"] >= prev["E"] or data["u"] > prev["u"]
        last[data["s"]] = data
    single = load_binance(name, reps=1)
    assert len(corpus.frames) == 3 * len(single.frames)
    # Later repetitions carry the same levels as the recording, only the ids and times move.
    n = len(single.frames)
    for a, b in zip(corpus.frames[:n], corpus.frames[2 * n :], strict=True):
        da, db = json.loads(a)["data"], json.loads(b)["data"]
        assert (da["b"], da["a"], da["s"]) == (db["b"], db["a"], db["s"])
        assert db["u"] > da["u"]


def test_spot_ground_truth_matches_the_recording_counted_independently() -> None:
    corpus = load_binance("binance-spot", reps=1)
    assert corpus.expected_rows == sum(binance_spot_expected_levels().values())
    assert corpus.snapshot_levels == sum(
        len(s["bids"]) + len(s["asks"]) for s in binance_snapshots().values()
    )
    # Repetitions after the first apply every frame.
    two = load_binance("binance-spot", reps=2)
    assert two.applied_levels - corpus.applied_levels == corpus.frame_levels
    assert two.applied_frames - corpus.applied_frames == len(corpus.frames)


def test_first_repetition_keeps_recorded_text_and_places_snapshots_after_straddling_diffs() -> None:
    corpus = load_binance("binance-spot", reps=1)
    recorded = [text for _, text in corpus.recorded]
    assert corpus.frames == recorded
    kinds = [kind for kind, _ in corpus.schedule]
    assert kinds.count("rest") == 4 and kinds.count("ws") == len(recorded)
    first_rest = kinds.index("rest")
    assert first_rest > 0  # the recording's first snapshot arrives after some diffs


def test_other_venue_frames_are_book_messages() -> None:
    frames = other_venue_frames()
    assert len(frames["kraken-v1-book"]) == 4269 + 10  # updates + snapshots (SOURCES.md)
    assert len(frames["coinbase-l2-updates"]) == 773
    # 6 snapshots + 2,142 deltas (= 413+420+382+379+299+249, the per-book counts in SOURCES.md)
    assert len(frames["bybit-v5-orderbook"]) == 6 + 2142
    assert len(frames["okx-books"]) == 290


def test_bybit_frames_carry_the_market_of_their_connection() -> None:
    markets = Counter(address.rsplit("/", 1)[1] for address, _ in bybit_book_frames())
    # SOURCES.md: linear 4 snapshots + 413+420+382+379 deltas; spot 2 snapshots + 299+249 deltas
    assert markets == {"linear": 4 + 413 + 420 + 382 + 379, "spot": 2 + 299 + 249}


def test_profile_summary_counts_only_the_run_and_separates_waits() -> None:
    raw = "\n".join(
        [
            "thread (1): MainThread;<module> (m.py:1);run_inproc (b.py:2);on_item (o.py:3) 6",
            "thread (1): MainThread;<module> (m.py:1);run_inproc (b.py:2);build_flow (b.py:9) 50",
            "thread (2): feeder-0;RecordingFeeder._run (b.py:4);_on_frame (c.py:5) 4",
            "thread (2): feeder-0;RecordingFeeder._run (b.py:4);Condition.wait (threading.py:7) 3",
            "thread (3) 9",
        ]
    )
    s = summarize(raw)
    assert s["samples"] == 10
    assert s["waiting_samples"] == 3 and s["native_only_samples"] == 9
    assert s["self"][0] == {"function": "on_item (o.py)", "share": 0.6}
    assert s["threads"] == {"MainThread": 0.6, "feeder (client frame path)": 0.4}
