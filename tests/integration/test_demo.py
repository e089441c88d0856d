"""`cryptoflow demo` as a user runs it (the console script), into a temporary warehouse."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import coinbase_truth
from tests.support.recording_truth import binance_spot_expected_levels, binance_spot_trades

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def table_count(stdout: str, table: str) -> int:
    line = next(line for line in stdout.splitlines() if line.strip().startswith(f"cryptoflow.{table} "))
    return int(line.split()[1])


def exchange_count(stdout: str, table: str, exchange: str) -> int:
    """The `    <exchange>  <rows>` line under the table's line in the summary."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"cryptoflow.{table} "))
    for line in lines[start + 1 :]:
        if line.strip().startswith("cryptoflow.") or not line.strip():
            break
        if line.startswith("    ") and not line.startswith("      ") and line.split()[0] == exchange:
            return int(line.split()[1])
    return 0


def test_demo_lands_rows_in_every_table_per_exchange_and_reports_them(tmp_path):
    warehouse = tmp_path / "wh"
    cmd = [sys.executable, "-m", "cryptoflow.cli", "demo", "--warehouse", str(warehouse)]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    levels = sum(binance_spot_expected_levels().values())
    assert table_count(first.stdout, "spot_delta") == levels
    sent = re.findall(r"replay: (\d+)/(\d+) frames sent", first.stdout)[-1]
    assert sent[0] == sent[1] != "0"  # the Binance recording was replayed in full
    # a second run recreates the tables instead of doubling them
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0
    assert table_count(second.stdout, "spot_delta") == levels
    assert exchange_count(second.stdout, "ticks", "binance") == len(binance_spot_trades())
    assert exchange_count(second.stdout, "ticks", "coinbase") == len(coinbase_truth.trades())
    assert exchange_count(second.stdout, "ticks", "kraken") > 0
    for exchange in ("binance", "coinbase", "kraken"):
        assert exchange_count(second.stdout, "spot_ob", exchange) > 0
