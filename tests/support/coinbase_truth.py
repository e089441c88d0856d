"""Ground truth for the Coinbase recording, read with the standard library only (json + Decimal), not
with CryptoFlow's readers or book: the trades (taker side = opposite of the documented maker side) and
the book of each product after any `l2_data` frame, keyed by the frame's envelope timestamp."""

from __future__ import annotations

import heapq
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

COINBASE = (
    Path(__file__).resolve().parents[2]
    / "fixtures"
    / "external"
    / "coinbase"
    / "cryptofeed_v3_COINBASE.jsonl"
)


def _frames() -> list[dict]:
    out = []
    with COINBASE.open() as handle:
        for line in handle:
            record = json.loads(line)
            if record["t"] == "recv":
                out.append(json.loads(record["data"]))
    return out


def ts_us(text: str) -> int:
    base, _, frac = text.rstrip("Z").partition(".")
    whole = datetime.fromisoformat(base + "+00:00")
    return int(whole.timestamp()) * 1_000_000 + int((frac + "000000")[:6])


def trades() -> dict[str, dict]:
    """trade_id -> {product, price, size, side (taker), ts_us}; the first sighting of each id."""
    out: dict[str, dict] = {}
    for msg in _frames():
        if msg["channel"] != "market_trades":
            continue
        for event in msg["events"]:
            for t in event["trades"]:
                out.setdefault(t["trade_id"], {
                    "product": t["product_id"], "price": Decimal(t["price"]), "size": Decimal(t["size"]),
                    "side": {"BUY": "sell", "SELL": "buy"}[t["side"]], "ts_us": ts_us(t["time"]),
                })  # fmt: skip
    return out


def books_at(wanted: set[tuple[str, int]], depth: int) -> dict[tuple[str, int], tuple[list, list]]:
    """(product, frame ts µs) -> (best `depth` bids, best `depth` asks) as [(Decimal px, Decimal qty)]."""
    bids: dict[str, dict[Decimal, Decimal]] = {}
    asks: dict[str, dict[Decimal, Decimal]] = {}
    out = {}
    for msg in _frames():
        if msg["channel"] != "l2_data":
            continue
        stamp = ts_us(msg["timestamp"])
        for event in msg["events"]:
            product = event["product_id"]
            if event["type"] == "snapshot":
                bids[product], asks[product] = {}, {}
            for u in event["updates"]:
                side = bids[product] if u["side"] == "bid" else asks[product]
                px, qty = Decimal(u["price_level"]), Decimal(u["new_quantity"])
                if qty == 0:
                    side.pop(px, None)
                else:
                    side[px] = qty
            if (product, stamp) in wanted:
                b = heapq.nlargest(depth, bids[product].items())
                a = heapq.nsmallest(depth, asks[product].items())
                out[(product, stamp)] = (b, a)
    return out


def l2_stamps() -> list[tuple[str, int]]:
    return [
        (e["product_id"], ts_us(m["timestamp"]))
        for m in _frames()
        if m["channel"] == "l2_data"
        for e in m["events"]
    ]
