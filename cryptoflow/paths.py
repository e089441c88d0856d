"""Where the repository keeps its recordings and reference data (a clone has no ../shared)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "fixtures"
EXTERNAL_RECORDINGS = FIXTURES / "external"
INSTRUMENTS = FIXTURES / "instruments"

BINANCE_SPOT_WS = EXTERNAL_RECORDINGS / "binance" / "cryptofeed_BINANCE.ws.1.0"
BINANCE_SPOT_HTTP = EXTERNAL_RECORDINGS / "binance" / "cryptofeed_BINANCE.http.0.0"
BINANCE_SPOT_INSTRUMENTS = INSTRUMENTS / "binance_spot.json"
COINBASE_V3 = EXTERNAL_RECORDINGS / "coinbase" / "cryptofeed_v3_COINBASE.jsonl"
