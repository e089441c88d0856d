"""The journal over both Binance markets: a live `ticks` flow with the journal enabled lands the spot
and the USD-M trades once each (two sources, two journal directories, two writer ids on one table);
a capture of both markets replayed through `futures_delta` while it is SIGKILLed at every kind of fault
point ends with exactly the recording's applied levels. Ground truth is read from the recording files
with the standard library (tests/support/recording_truth.py)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from connectors.journal import JournalReader, RecordKind
from tests.integration.test_binance_usdm_end_to_end import assert_futures_delta_equals_recording, usdm_env
from tests.support.crash import (
    as_multiset,
    capture,
    replay_env,
    run_once,
    run_with_crashes,
    sql_env,
    table_rows,
)
from tests.support.recording_truth import binance_spot_trades, binance_usdm_trades

pytestmark = pytest.mark.integration


def test_live_ticks_over_spot_and_usdm_through_the_journal(
    binance_usdm_simulator, binance_spot_simulator, tmp_path
):
    env = {
        **usdm_env(binance_usdm_simulator, tmp_path / "wh", spot=binance_spot_simulator),
        "CRYPTOFLOW_JOURNAL__ENABLED": "true",
        "CRYPTOFLOW_JOURNAL__DIR": str(tmp_path / "journal"),
    }
    result = run_once("ticks", env, tmp_path / "recovery")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(env, "ticks")
    want = {("spot", t["s"], str(t["a"])): t for t in binance_spot_trades()}
    want |= {("perp", t["s"], str(t["a"])): t for t in binance_usdm_trades()}
    got = {(r["market"], r["exchange_symbol"], r["trade_id"]): r for r in rows}
    assert len(rows) == len(got) == len(want) > 0 and got.keys() == want.keys()
    for key, t in want.items():
        assert got[key]["price"] == Decimal(t["p"]) and got[key]["qty"] == Decimal(t["q"])
    # one journal per source: spot and USD-M shard numbers never share a directory
    journal = tmp_path / "journal" / "ticks"
    assert sorted(p.name for p in journal.iterdir()) == ["binance_spot", "binance_usdm"]
    usdm_frames = [
        r
        for part in (journal / "binance_usdm").iterdir()
        for r in JournalReader(part).read(100_000)
        if r.kind is RecordKind.WS_FRAME
    ]
    assert len(usdm_frames) == len(binance_usdm_trades())  # exactly the emitted frames, no acks


def test_usdm_capture_replayed_through_futures_delta_survives_sigkills(
    binance_usdm_simulator, binance_spot_simulator, tmp_path
):
    out = tmp_path / "capture"
    capture(usdm_env(binance_usdm_simulator, tmp_path / "unused", spot=binance_spot_simulator), out)
    assert sorted(p.name for p in out.iterdir()) == ["binance_spot", "binance_usdm"]
    kinds = Counter(
        r.kind for part in (out / "binance_usdm").iterdir() for r in JournalReader(part).read(100_000)
    )
    assert kinds[RecordKind.REST_SNAPSHOT] == binance_usdm_simulator.stats.rest_requests["/fapi/v1/depth"]
    env = replay_env(sql_env(tmp_path / "wh"), out)
    env["CRYPTOFLOW_EXCHANGES__BINANCE__USDM__ENABLED"] = "true"
    env["CRYPTOFLOW_EXCHANGES__BINANCE__USDM__SYMBOLS"] = usdm_env(binance_usdm_simulator, tmp_path)[
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__SYMBOLS"
    ]
    report = run_with_crashes(
        "futures_delta", env, tmp_path / "recovery", ["read:3", "parquet:1", "after_commit:1"], pace_s=0.02
    )
    assert report.fired, "\n".join(report.logs)  # at least one kill really happened
    rows = table_rows(env, "futures_delta")
    assert max(as_multiset(rows).values()) == 1, "\n".join(report.logs)
    assert_futures_delta_equals_recording(rows)
