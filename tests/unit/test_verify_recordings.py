"""`cryptoflow verify` over every book recording in fixtures/external: counts come from the files read
with the standard library (tests/support/book_truth.py); every check must match, no book may cross."""

from __future__ import annotations

import json

import pytest

from cryptoflow.cli import main
from cryptoflow.verify import verify_paths
from tests.support import book_truth as truth


def _clean(stats: dict) -> None:
    assert stats["synced"]
    assert stats["gaps"] == 0 and stats["crossed"] == 0 and stats["resyncs"] == 0
    assert stats["checks"]["checksum"]["mismatch"] == 0
    assert stats["checks"]["book_ticker"]["mismatch"] == 0


@pytest.mark.parametrize(("paths", "label", "usdm"), [(truth.BINANCE_SPOT, "BINANCE", False),
                                                      (truth.BINANCE_USDM, "BINANCE_FUTURES", True)])  # fmt: skip
def test_binance_every_symbol_syncs_and_applies_every_newer_diff(paths, label, usdm):
    report = verify_paths(paths).report()["symbols"]
    expected = truth.binance_applied_counts(paths, usdm=usdm)
    assert set(report) == {f"{label}:{s}" for s in expected}
    for symbol, n in expected.items():
        stats = report[f"{label}:{symbol}"]
        _clean(stats)
        assert stats["applied"] == n
    # bookTicker cross-checks actually happened (the check is not vacuous).
    assert sum(s["checks"]["book_ticker"]["match"] for s in report.values()) > 10


def test_okx_every_checksum_matches():
    report = verify_paths([truth.OKX]).report()["symbols"]
    expected = truth.okx_checksum_counts()
    assert sum(expected.values()) == 290
    for inst_id, n in expected.items():
        _clean(report[f"OKX:{inst_id}"])
        assert report[f"OKX:{inst_id}"]["checks"]["checksum"]["match"] == n


def test_kraken_v1_every_checksum_matches():
    report = verify_paths([truth.KRAKEN_V1]).report()["symbols"]
    expected: dict[str, int] = {}
    for pair, _, _, _, checksum in truth.kraken_v1_book_messages():
        if checksum is not None:
            expected[pair] = expected.get(pair, 0) + 1
    assert sum(expected.values()) == 4269
    for pair, n in expected.items():
        stats = report[f"KRAKEN:{pair}"]
        _clean(stats)
        assert stats["checks"]["checksum"]["match"] == n and stats["applied"] == n


def test_kraken_v2_snapshot_checksum_vector():
    report = verify_paths([truth.KRAKEN_V2_VECTOR]).report()["symbols"]
    assert report["KRAKEN:ALGO/USD"]["checks"]["checksum"] == {"match": 1, "mismatch": 0}


def test_bybit_every_delta_applies_without_gap():
    report = verify_paths([truth.BYBIT_V3, *truth.BYBIT_L1]).report()["symbols"]
    for (market, symbol), n in truth.bybit_delta_counts().items():
        stats = report[f"BYBIT:{symbol}{'' if market == 'spot' else '-PERP'}"]
        _clean(stats)
        assert stats["applied"] == n
    level1 = [s for label, s in report.items() if label.startswith(("BYBIT:BAND", "BYBIT:OPUSDC"))]
    assert level1 and all(s["snapshots"] > 0 and s["gaps"] == 0 for s in level1)


def test_coinbase_every_update_applies_without_gap():
    report = verify_paths([truth.COINBASE_V3]).report()["symbols"]
    for product, n in truth.coinbase_update_counts().items():
        _clean(report[f"COINBASE:{product}"])
        assert report[f"COINBASE:{product}"]["applied"] == n


def test_cli_json_prints_exactly_one_object(capsys):
    rc = main(["verify", "--json", str(truth.OKX), str(truth.KRAKEN_V2_VECTOR)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out)  # raises if there is anything but one JSON document
    assert set(report["symbols"]) == {
        "OKX:BTC-USD-220527",
        "OKX:UNI-USD-SWAP",
        "OKX:BTC-USDT",
        "KRAKEN:ALGO/USD",
    }
    stats = report["symbols"]["OKX:BTC-USDT"]
    assert set(stats) >= {"applied", "gaps", "resyncs", "crossed", "checks"}
    assert set(stats["checks"]) == {"book_ticker", "checksum"}


def test_cli_fails_on_unknown_file(tmp_path, capsys):
    bad = tmp_path / "x.jsonl"
    bad.write_text("[1, 2]\n")
    assert main(["verify", str(bad)]) == 2
    assert "not a recording format" in capsys.readouterr().err
