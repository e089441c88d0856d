"""Binance spot end to end: simulator (real sockets) -> `python -m bytewax.run` -> local Iceberg tables,
checked against counts taken straight from the recording file."""

import itertools
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.iceberg.catalog import load_catalog
from cryptoflow.config import load_settings
from cryptoflow.demo import demo_environment
from tests.support.recording_truth import (
    binance_spot_expected_level_values,
    binance_spot_expected_levels,
    binance_spot_trades,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def run_flow(name: str, env: dict[str, str], workers: int = 1) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bytewax.run", f"dataflows.{name}", "-w", str(workers)],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def read(env, table):
    settings = load_settings(environ={**os.environ, **env})
    return load_catalog(settings.catalog).load_table(("cryptoflow", table)).scan().to_arrow().to_pylist()


@pytest.fixture
def env(binance_spot_simulator, tmp_path):
    return demo_environment(binance_spot_simulator, tmp_path / "warehouse")


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_spot_delta_rows_equal_the_recordings_level_changes(env, workers):
    run_flow("spot_delta", env, workers)
    rows = read(env, "spot_delta")
    expected = binance_spot_expected_levels()
    assert Counter(r["exchange_symbol"] for r in rows) == expected
    assert sum(expected.values()) == len(rows) > 0
    got = Counter((r["exchange_symbol"], r["side"], r["price"], r["qty"], r["is_snapshot"]) for r in rows)
    assert got == binance_spot_expected_level_values()  # exact decimals, side and snapshot flag per level
    # each book: one snapshot, then diffs that straddle it and chain without a hole (U == prev u + 1)
    for symbol in expected:
        mine = [r for r in rows if r["exchange_symbol"] == symbol]
        snapshot_ids = {r["seq"] for r in mine if r["is_snapshot"]}
        assert len(snapshot_ids) == 1
        (book_id,) = snapshot_ids
        diffs = sorted({(r["first_seq"], r["seq"]) for r in mine if not r["is_snapshot"]}, key=lambda d: d[1])
        if diffs:
            assert diffs[0][0] <= book_id + 1 <= diffs[0][1]
            assert all(nxt[0] == prev[1] + 1 for prev, nxt in itertools.pairwise(diffs))


def test_ticks_rows_equal_the_recordings_trades(env):
    run_flow("ticks", env)
    rows = read(env, "ticks")
    trades = binance_spot_trades()
    assert len(rows) == len(trades) > 0
    got = {(r["exchange_symbol"], r["trade_id"]): r for r in rows}
    for t in trades:
        row = got[(t["s"], str(t["a"]))]
        assert row["price"] == Decimal(t["p"]) and row["qty"] == Decimal(t["q"])
        assert row["side"] == ("sell" if t["m"] else "buy")
        assert row["exchange_ts"].timestamp() * 1000 == pytest.approx(t["T"])
        assert row["symbol"] in ("NKN-USDT", "LRC-BTC")
