"""`cryptoflow demo` as a user runs it (the console script), into a temporary warehouse: all seven
streams over every simulated venue, counts checked against the recordings, and rows for every
(stream, exchange) pair the stream registry offers."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.registry import STREAMS, offered
from cryptoflow.demo import DEMO_VENUES
from tests.support import bybit_okx_truth, coinbase_truth
from tests.support.recording_truth import (
    binance_spot_expected_levels,
    binance_spot_trades,
    binance_usdm_expected_level_values,
    binance_usdm_trades,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def table_count(stdout: str, table: str) -> int:
    line = next(line for line in stdout.splitlines() if line.strip().startswith(f"cryptoflow.{table} "))
    return int(line.split()[1])


def venue_count(stdout: str, table: str, exchange: str, market: str) -> int:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"cryptoflow.{table} "))
    for line in lines[start + 1 :]:
        parts = line.split()
        if not parts or parts[0].startswith("cryptoflow."):
            break
        if parts[:2] == [exchange, market]:
            return int(parts[2])
    return 0


MARKETS = ("spot", "perp", "future")
SOURCE_MARKETS = {"spot": ("spot",), "usdm": ("perp", "future"), "linear": ("perp", "future")}


def offered_pairs() -> list[tuple[str, str, tuple[str, ...]]]:
    """(stream, exchange, markets) for every source the registry offers per stream: a source named
    `<exchange>_<market>` covers that market, a bare `<exchange>` any of its markets."""
    out = []
    for stream in STREAMS:
        for source in offered(stream):
            exchange, _, market = source.partition("_")
            out.append((stream, exchange, SOURCE_MARKETS.get(market, MARKETS)))
    return out


def test_demo_lands_every_stream_and_reports_rows_per_table_and_exchange(tmp_path):
    warehouse = tmp_path / "wh"
    cmd = [sys.executable, "-m", "cryptoflow.cli", "demo", "--warehouse", str(warehouse)]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stdout + first.stderr
    spot_levels = sum(binance_spot_expected_levels().values())
    usdm_levels = sum(binance_usdm_expected_level_values().values())
    assert venue_count(first.stdout, "spot_delta", "binance", "spot") == spot_levels
    assert venue_count(first.stdout, "futures_delta", "binance", "perp") == usdm_levels
    assert venue_count(first.stdout, "ticks", "binance", "spot") == len(binance_spot_trades())
    assert venue_count(first.stdout, "ticks", "binance", "perp") == len(binance_usdm_trades())
    for table in ("spot_ob", "futures_ob", "liquidations", "funding"):
        assert table_count(first.stdout, table) > 0
    # Coinbase (recording) and Kraken v2 (synthetic market) feed ticks, spot_delta and spot_ob
    assert venue_count(first.stdout, "ticks", "coinbase", "spot") == len(coinbase_truth.trades())
    for table in ("ticks", "spot_delta", "spot_ob"):
        assert venue_count(first.stdout, table, "coinbase", "spot") > 0
        assert venue_count(first.stdout, table, "kraken", "spot") > 0
    # Bybit v5 (spot + linear) and OKX v5 recordings feed every stream they carry
    bybit_trades = sum(bybit_okx_truth.bybit_trades().values())
    assert (
        venue_count(first.stdout, "ticks", "bybit", "spot")
        + venue_count(first.stdout, "ticks", "bybit", "perp")
        == bybit_trades
    )
    okx_trades = sum(bybit_okx_truth.okx_trades().values())
    assert sum(venue_count(first.stdout, "ticks", "okx", m) for m in ("spot", "perp", "future")) == okx_trades
    for table, market in (
        ("spot_delta", "spot"),
        ("spot_ob", "spot"),
        ("futures_delta", "perp"),
        ("futures_ob", "perp"),
    ):
        assert venue_count(first.stdout, table, "bybit", market) > 0
        assert venue_count(first.stdout, table, "okx", market) > 0
    assert venue_count(first.stdout, "funding", "bybit", "perp") == sum(
        bybit_okx_truth.bybit_funding_messages().values()
    )  # still the recording's: the synthetic Bybit venue stands in for liquidations only
    # every (stream, exchange[, market]) the registry offers has rows (liquidations and funding from
    # Binance USD-M, Bybit and OKX included: the synthetic market fills in what no recording has)
    pairs = offered_pairs()
    assert {(s, e) for s, e, _ in pairs} >= {
        (t, e) for t in ("liquidations", "funding") for e in ("binance", "bybit", "okx")
    }
    empty = [(s, e, m) for s, e, m in pairs if sum(venue_count(first.stdout, s, e, x) for x in m) == 0]
    assert empty == [], first.stdout
    assert table_count(first.stdout, "gaps") == 0
    # every replay finished: frames sent == frames planned per venue (Binance spot and USD-M plan theirs;
    # Coinbase plans per subscription; Bybit and OKX count their whole recording; Kraken v2 is generated)
    progress = [line for line in first.stdout.splitlines() if line.startswith("replay:")][-1]
    frames = re.findall(r"(\d+)/(\d+) frames", progress)
    assert len(frames) == len(DEMO_VENUES)
    assert all(sent == planned != "0" for sent, planned in (frames[0], frames[1], frames[4]))
    # a second run recreates the tables instead of doubling them
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0
    assert venue_count(second.stdout, "spot_delta", "binance", "spot") == spot_levels
    assert venue_count(second.stdout, "futures_delta", "binance", "perp") == usdm_levels
    assert table_count(second.stdout, "futures_delta") == table_count(first.stdout, "futures_delta")
