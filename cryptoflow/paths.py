"""Where the repository keeps its recordings and reference data (a clone has no ../shared)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "fixtures"
EXTERNAL_RECORDINGS = FIXTURES / "external"
INSTRUMENTS = FIXTURES / "instruments"

BINANCE_SPOT_WS = EXTERNAL_RECORDINGS / "binance" / "cryptofeed_BINANCE.ws.1.0"
BINANCE_SPOT_HTTP = EXTERNAL_RECORDINGS / "binance" / "cryptofeed_BINANCE.http.0.0"
BINANCE_SPOT_INSTRUMENTS = INSTRUMENTS / "binance_spot.json"
BINANCE_USDM_WS = EXTERNAL_RECORDINGS / "binance" / "cryptofeed_BINANCE_FUTURES.ws.1.0"
BINANCE_USDM_HTTP = EXTERNAL_RECORDINGS / "binance" / "cryptofeed_BINANCE_FUTURES.http.0.0"
BINANCE_USDM_INSTRUMENTS = INSTRUMENTS / "binance_usdm.json"
COINBASE_V3 = EXTERNAL_RECORDINGS / "coinbase" / "cryptofeed_v3_COINBASE.jsonl"
