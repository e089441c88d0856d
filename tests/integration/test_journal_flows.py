"""The journal in real runs: `cryptoflow capture` records exactly what the exchange sent; a live flow
with the journal enabled lands the recording's rows; `-r DIR` creates the recovery store on first use
and reuses it without a panic (a rerun after the end adds nothing); SIGTERM stops a flow cleanly and
the next run finishes the job with exactly the rows of an uninterrupted run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from connectors.journal import JournalReader, RecordKind
from cryptoflow.demo import demo_environment
from tests.support.crash import FAULTS, REPO, as_multiset, flow_cmd, replay_env, run_once, sql_env, table_rows
from tests.support.recording_truth import (
    _server_frames,
    binance_spot_expected_level_values,
    binance_spot_trades,
)
from tests.support.venue_matrix import CASES, stable

pytestmark = pytest.mark.integration


def level_values(rows) -> Counter:
    return Counter((r["exchange_symbol"], r["side"], r["price"], r["qty"], r["is_snapshot"]) for r in rows)


def test_capture_records_every_frame_and_snapshot_the_exchange_sent(binance_spot_simulator, tmp_path):
    env = {**os.environ, **demo_environment(binance_spot_simulator, tmp_path / "wh")}
    out = tmp_path / "capture"
    result = subprocess.run(
        [sys.executable, "-m", "cryptoflow.cli", "capture", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["binance_spot"]  # USD-M is off in the demo env
    parts = sorted((out / "binance_spot").iterdir())
    records = [r for part in parts for r in JournalReader(part).read(100_000)]
    kinds = Counter(r.kind for r in records)
    stats = binance_spot_simulator.stats
    assert kinds[RecordKind.WS_FRAME] == stats.frames_sent == len(_server_frames_for_symbols())
    assert kinds[RecordKind.REST_SNAPSHOT] == stats.rest_requests["/api/v3/depth"]
    assert kinds[RecordKind.INSTRUMENTS] == kinds[RecordKind.END] == len(parts)
    # raw bytes, exactly as sent: every recorded frame is in the capture
    sent = Counter(frame_key(r.payload) for r in records if r.kind is RecordKind.WS_FRAME)
    assert sent == Counter(_server_frames_for_symbols())


def frame_key(payload: bytes) -> str:
    import json

    return json.dumps(json.loads(payload), sort_keys=True)


def _server_frames_for_symbols() -> list[str]:
    """Frames of the dev config's streams, straight from the recording file."""
    import json

    from tests.support.recording_truth import BINANCE_WS

    wanted = {"nknusdt", "blzeth", "lrcbtc", "runeeur"}
    out = []
    for frame in _server_frames(BINANCE_WS):
        stream = frame.get("stream", "")
        if stream.split("@")[0] in wanted and stream.split("@", 1)[1] in ("depth@100ms", "aggTrade"):
            out.append(json.dumps(frame, sort_keys=True))
    return out


def test_live_flow_through_the_journal_lands_the_recording(binance_spot_simulator, tmp_path):
    env = {
        **demo_environment(binance_spot_simulator, tmp_path / "wh"),
        "CRYPTOFLOW_JOURNAL__ENABLED": "true",
        "CRYPTOFLOW_JOURNAL__DIR": str(tmp_path / "journal"),
    }
    result = run_once("spot_delta", env, tmp_path / "recovery")
    assert result.returncode == 0, result.stderr[-3000:]
    assert level_values(table_rows(env, "spot_delta")) == binance_spot_expected_level_values()
    shards = sorted((tmp_path / "journal" / "spot_delta" / "binance_spot").iterdir())
    assert shards and all(any(p.glob("*.seg")) for p in shards)


def test_recovery_store_is_created_then_reused_without_duplicates(binance_capture, tmp_path):
    env = replay_env(sql_env(tmp_path / "wh"), binance_capture, batch_size=1000)
    recovery = tmp_path / "does" / "not" / "exist"
    first = run_once("spot_delta", env, recovery)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in recovery.glob("part-*.sqlite3")) == ["part-0.sqlite3"]
    rows = table_rows(env, "spot_delta")
    again = run_once("spot_delta", env, recovery)  # resumes after the end: nothing new
    assert again.returncode == 0, again.stderr[-3000:]
    assert "UNIQUE constraint" not in again.stderr
    assert as_multiset(table_rows(env, "spot_delta")) == as_multiset(rows)
    assert level_values(rows) == binance_spot_expected_level_values()


def test_sigterm_stops_cleanly_and_the_next_run_completes_exactly(binance_capture, tmp_path):
    env = replay_env(sql_env(tmp_path / "wh"), binance_capture)
    recovery = tmp_path / "recovery"
    full = {**os.environ, **env, "PYTHONPATH": f"{FAULTS}{os.pathsep}{REPO}", "CFTEST_FAULT_PACE_S": "0.03"}
    proc = subprocess.Popen(
        flow_cmd("spot_delta", recovery), cwd=REPO, env=full, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Signal once the source is mid-stream (paced), not after a fixed sleep: under load the start-up
    # alone (recovery store, catalog) can outlast any fixed delay.
    lines: list[str] = []
    reading = threading.Event()

    def collect() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "CRYPTOFLOW-READING" in line:
                reading.set()
        reading.set()  # EOF: the process ended before reading; the asserts below say so

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    assert reading.wait(120), "the flow never started reading"
    assert proc.poll() is None, "".join(lines)[-3000:]
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    collector.join(10)
    err = "".join(lines)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 1, err[-3000:]  # Python's clean abort (KeyboardInterrupt), not -15
    assert "KeyboardInterrupt" in err
    result = run_once("spot_delta", env, recovery)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(env, "spot_delta")
    assert level_values(rows) == binance_spot_expected_level_values()
    assert max(as_multiset(rows).values()) == 1


def test_without_the_journal_a_second_run_appends_its_new_data(binance_spot_simulator, tmp_path):
    """Queue path (live input, no replay): a later run's offsets must not fall under the watermark of
    an earlier run's commits, or the sink would drop genuinely new data (like `demo --keep`)."""
    env = demo_environment(binance_spot_simulator, tmp_path / "wh")
    for _ in range(2):
        result = run_once("ticks", env, None)
        assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(env, "ticks")
    assert len(rows) == 2 * len(binance_spot_trades()) > 0


def test_live_journal_flow_resumes_from_its_offset_while_the_connector_cannot_reconnect(
    binance_spot_venue, tmp_path
):
    """Live mode: the connector journals the exchange's replay, then the exchange goes away. The flow is
    SIGKILLed again and again; each run resumes from its journal offset through Bytewax recovery while
    the connector keeps failing to reconnect in the background, and the table ends exact."""
    from cryptoflow.simulator.server import ExchangeSimulator

    recovery = tmp_path / "recovery"
    with ExchangeSimulator(binance_spot_venue, speed=0.0) as sim:
        env = {
            **demo_environment(sim, tmp_path / "wh"),
            "CRYPTOFLOW_JOURNAL__ENABLED": "true",
            "CRYPTOFLOW_JOURNAL__DIR": str(tmp_path / "journal"),
            "CRYPTOFLOW_CONNECTOR__BATCH_SIZE": "1",
        }
        first = run_once("spot_delta", env, recovery, "after_commit:1", pace_s=0.03)
        assert first.returncode == -9, first.stderr[-3000:]  # journal complete, one commit, killed
    for fault in ("random:1.6", "random:2.4", "random:0.9", "random:2.9"):  # a live flow never ends
        result = run_once("spot_delta", env, recovery, fault, pace_s=0.03)
        assert result.returncode == -9, result.stderr[-3000:]
    full = {**os.environ, **env, "PYTHONPATH": f"{FAULTS}{os.pathsep}{REPO}"}
    proc = subprocess.Popen(
        flow_cmd("spot_delta", recovery), cwd=REPO, env=full, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    expected = binance_spot_expected_level_values()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a live flow never ends by itself: wait for the data
            time.sleep(1.0)
            try:
                if level_values(table_rows(env, "spot_delta")) == expected:
                    break
            except Exception:  # table not created yet
                continue
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    # the connector really was cut off (a lost connection, or the REST instrument list failing)
    assert re.search(r"reconnecting|exchangeInfo( via \S+)? failed", err), err[-2000:]
    rows = table_rows(env, "spot_delta")
    assert level_values(rows) == expected
    assert max(as_multiset(rows).values()) == 1


@pytest.mark.parametrize("case", CASES, ids=str)
def test_live_flow_of_every_venue_through_the_journal_lands_the_rows_of_a_direct_run(case, tmp_path):
    """Bybit, OKX, Coinbase, Kraken: clients journal every frame, their instrument map and the connection
    gaps they declare; the partition decodes the journal into exactly the events of the queue path."""
    from cryptoflow.simulator.server import ExchangeSimulator

    flow = case.flows[-1]  # the book flow: sequencing, resyncs and gaps all go through the journal
    runs = {}
    for mode in ("direct", "journal"):
        with ExchangeSimulator(case.make_venue()) as sim:
            env = {**case.env(sim), **sql_env(tmp_path / mode)}
            if mode == "journal":
                env |= {
                    "CRYPTOFLOW_JOURNAL__ENABLED": "true",
                    "CRYPTOFLOW_JOURNAL__DIR": str(tmp_path / "journal"),
                }
            result = run_once(flow, env, tmp_path / f"recovery-{mode}")
        assert result.returncode == 0, result.stderr[-3000:]
        runs[mode] = table_rows(env, flow)
    assert runs["direct"] and stable(runs["journal"]) == stable(runs["direct"])
    shards = sorted((tmp_path / "journal" / flow / case.source).iterdir())
    assert len(shards) > 1 and all(any(p.glob("*.seg")) for p in shards)
