"""Ground truth for the Bybit v3 and OKX v1 recordings, read with the standard library only."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "external"
BYBIT_V3 = FIXTURES / "bybit" / "cryptofeed_v3_BYBIT.jsonl"
OKX_V1 = FIXTURES / "okx" / "cryptofeed_OKX.ws.1.0"


def bybit_messages() -> list[tuple[str, dict]]:
    """(category, message) of every received frame, category from the connection's URL."""
    url_of: dict[str, str] = {}
    out = []
    for line in BYBIT_V3.read_text().splitlines():
        rec = json.loads(line)
        if rec["t"] == "connect":
            url_of[rec["conn"]] = rec["addr"]
        elif rec["t"] == "recv":
            out.append((url_of[rec["conn"]].rsplit("/", 1)[1], json.loads(rec["data"])))
    return out


def bybit_levels() -> Counter:
    """(category, symbol, side, price, qty, is_snapshot) of every recorded book level."""
    values: Counter = Counter()
    for category, msg in bybit_messages():
        if msg.get("topic", "").startswith("orderbook."):
            data = msg["data"]
            for side, key in (("bid", "b"), ("ask", "a")):
                for price, qty in data[key]:
                    values[
                        (category, data["s"], side, Decimal(price), Decimal(qty), msg["type"] == "snapshot")
                    ] += 1
    return values


def bybit_trades() -> Counter:
    out: Counter = Counter()
    for category, msg in bybit_messages():
        if msg.get("topic", "").startswith("publicTrade."):
            for t in msg["data"]:
                out[(category, t["s"], str(t["i"]), Decimal(t["p"]), Decimal(t["v"]), t["S"].lower())] += 1
    return out


def bybit_funding_messages() -> Counter:
    """Linear ticker messages that carry a funding field, per symbol."""
    fields = ("fundingRate", "nextFundingTime", "markPrice", "indexPrice")
    out: Counter = Counter()
    for category, msg in bybit_messages():
        topic = msg.get("topic", "")
        if category == "linear" and topic.startswith("tickers.") and any(f in msg["data"] for f in fields):
            out[msg["data"]["symbol"]] += 1
    return out


def bybit_book_at(category: str, symbol: str, u: int) -> tuple[dict, dict]:
    """The book of `symbol` after the last recorded frame with update id <= `u` (price -> qty)."""
    bids: dict = {}
    asks: dict = {}
    for cat, msg in bybit_messages():
        if cat != category or msg.get("topic") != f"orderbook.200.{symbol}" or msg["data"]["u"] > u:
            continue
        if msg["type"] == "snapshot":
            bids, asks = {}, {}
        for book, key in ((bids, "b"), (asks, "a")):
            for price, qty in msg["data"][key]:
                if Decimal(qty) == 0:
                    book.pop(Decimal(price), None)
                else:
                    book[Decimal(price)] = Decimal(qty)
    return bids, asks


def okx_messages() -> list[dict]:
    out = []
    for line in OKX_V1.read_text().splitlines():
        head, _, rest = line.partition(" ")
        if head.endswith(":"):  # server frame: "<ts>: <json>"
            out.append(json.loads(rest))
    return out


def okx_levels() -> Counter:
    values: Counter = Counter()
    for msg in okx_messages():
        if msg.get("arg", {}).get("channel") == "books" and "event" not in msg:
            for entry in msg["data"]:
                for side in ("bids", "asks"):
                    for level in entry[side]:
                        values[(msg["arg"]["instId"], side[:3], Decimal(level[0]), Decimal(level[1]),
                                msg["action"] == "snapshot")] += 1  # fmt: skip
    return values


def okx_trades() -> Counter:
    out: Counter = Counter()
    for msg in okx_messages():
        if msg.get("arg", {}).get("channel") == "trades" and "event" not in msg:
            for t in msg["data"]:
                out[(t["instId"], t["tradeId"], Decimal(t["px"]), Decimal(t["sz"]), t["side"])] += 1
    return out


def okx_book_after(inst_id: str, updates: int) -> tuple[dict, dict]:
    """The book of `inst_id` after its snapshot and its first `updates` updates."""
    bids: dict = {}
    asks: dict = {}
    seen = -1
    for msg in okx_messages():
        if msg.get("arg", {}).get("channel") != "books" or msg["arg"]["instId"] != inst_id or "event" in msg:
            continue
        if seen >= updates:
            break
        seen += 1
        for book, key in ((bids, "bids"), (asks, "asks")):
            for level in msg["data"][0][key]:
                if Decimal(level[1]) == 0:
                    book.pop(Decimal(level[0]), None)
                else:
                    book[Decimal(level[0])] = Decimal(level[1])
    return bids, asks
