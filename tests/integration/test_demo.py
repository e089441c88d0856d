"""`cryptoflow demo` as a user runs it (the console script), into a temporary warehouse."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.recording_truth import binance_spot_expected_levels, binance_spot_trades

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def table_count(stdout: str, table: str) -> int:
    line = next(line for line in stdout.splitlines() if line.strip().startswith(f"cryptoflow.{table} "))
    return int(line.split()[1])


def test_demo_lands_rows_in_both_tables_and_reports_them(tmp_path):
    warehouse = tmp_path / "wh"
    cmd = [sys.executable, "-m", "cryptoflow.cli", "demo", "--warehouse", str(warehouse)]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    levels = sum(binance_spot_expected_levels().values())
    assert table_count(first.stdout, "spot_delta") == levels
    assert "replay: 179/179 frames sent" in first.stdout
    # a second run recreates the tables instead of doubling them
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0
    for table, count in (("spot_delta", levels), ("ticks", len(binance_spot_trades()))):
        assert table_count(second.stdout, table) == count
