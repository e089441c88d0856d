"""Ground truth counted straight from the recording files with the standard library only, so tests
never check the pipeline against the pipeline's own reader or parser."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "external"
BINANCE_WS = FIXTURES / "binance" / "cryptofeed_BINANCE.ws.1.0"
BINANCE_HTTP = FIXTURES / "binance" / "cryptofeed_BINANCE.http.0.0"
USDM_WS = FIXTURES / "binance" / "cryptofeed_BINANCE_FUTURES.ws.1.0"
USDM_HTTP = FIXTURES / "binance" / "cryptofeed_BINANCE_FUTURES.http.0.0"


def _server_frames(path: Path) -> list[dict]:
    frames = []
    for line in path.read_text().splitlines()[1:]:  # line 1 is the connect record
        if not line:
            continue
        _, _, payload = line.partition(": ")
        frames.append(json.loads(payload))
    return frames


def binance_snapshots(http: Path = BINANCE_HTTP) -> dict[str, dict]:
    out = {}
    for line in http.read_text().splitlines():
        if not line:
            continue
        url, _, rest = line.partition(" -> ")
        symbol = url.split("symbol=")[1].split("&")[0]
        out[symbol] = json.loads(rest.partition(": ")[2])
    return out


def binance_spot_expected_levels() -> Counter:
    """Per symbol: snapshot levels + levels of every diff newer than the snapshot (u > lastUpdateId)."""
    snapshots = binance_snapshots()
    counts: Counter = Counter()
    for symbol, snap in snapshots.items():
        counts[symbol] += len(snap["bids"]) + len(snap["asks"])
    for frame in _server_frames(BINANCE_WS):
        data = frame["data"]
        if data.get("e") == "depthUpdate" and data["u"] > snapshots[data["s"]]["lastUpdateId"]:
            counts[data["s"]] += len(data["b"]) + len(data["a"])
    return counts


def binance_spot_expected_level_values() -> Counter:
    """Multiset of (symbol, side, Decimal price, Decimal qty, is_snapshot) the delta table must hold."""
    snapshots = binance_snapshots()
    values: Counter = Counter()
    for symbol, snap in snapshots.items():
        for side, key in (("bid", "bids"), ("ask", "asks")):
            for price, qty in snap[key]:
                values[(symbol, side, Decimal(price), Decimal(qty), True)] += 1
    for frame in _server_frames(BINANCE_WS):
        data = frame["data"]
        if data.get("e") == "depthUpdate" and data["u"] > snapshots[data["s"]]["lastUpdateId"]:
            for side, key in (("bid", "b"), ("ask", "a")):
                for price, qty in data[key]:
                    values[(data["s"], side, Decimal(price), Decimal(qty), False)] += 1
    return values


def binance_spot_trades() -> list[dict]:
    return [f["data"] for f in _server_frames(BINANCE_WS) if f["data"].get("e") in ("aggTrade", "trade")]


def binance_usdm_expected_level_values() -> Counter:
    """USD-M: (symbol, side, price, qty, is_snapshot) multiset: snapshot levels, then every diff with
    `u >= lastUpdateId` (the first applied diff straddles: `U <= lastUpdateId <= u`, no "+1")."""
    snapshots = binance_snapshots(USDM_HTTP)
    values: Counter = Counter()
    for symbol, snap in snapshots.items():
        for side, key in (("bid", "bids"), ("ask", "asks")):
            for price, qty in snap[key]:
                values[(symbol, side, Decimal(price), Decimal(qty), True)] += 1
    for frame in _server_frames(USDM_WS):
        data = frame["data"]
        if data.get("e") == "depthUpdate" and data["u"] >= snapshots[data["s"]]["lastUpdateId"]:
            for side, key in (("bid", "b"), ("ask", "a")):
                for price, qty in data[key]:
                    values[(data["s"], side, Decimal(price), Decimal(qty), False)] += 1
    return values


def binance_usdm_trades() -> list[dict]:
    return [f["data"] for f in _server_frames(USDM_WS) if f["data"].get("e") == "aggTrade"]
