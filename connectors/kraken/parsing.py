"""Kraken spot WebSocket book frames -> `RawEvent`, v1 (`wss://ws.kraken.com`) and v2 (`/v2`).

Kraken has no sequence numbers: the checksum after every message is the integrity signal, and it is
computed over the exact price/qty **text**, so both parsers keep it. v1 sends quoted strings; v2 sends
JSON numbers, decoded here with `parse_float=str` so `0.12290` stays `"0.12290"` (a float would lose
the trailing zero and break the checksum). Both set `book_depth` (the subscribed depth Kraken
truncates to without sending deletes) and `checksum` (v1 only on updates, v2 on every message).
"""

from __future__ import annotations

import json

import orjson

from connectors.coinbase.parsing import rfc3339_us
from connectors.parse_errors import ParseError
from cryptoflow.model import Kind, Market, RawEvent

EXCHANGE = "kraken"
_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}


def normalize_pair(pair: str) -> str:
    """`XBT/CHF` -> `BTC-CHF` (v1 uses Kraken's legacy asset codes)."""
    base, _, quote = pair.partition("/")
    return f"{_ASSETS.get(base, base)}-{_ASSETS.get(quote, quote)}"


def _seconds_text_to_us(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000 + int((frac + "000000")[:6])


class KrakenV1Parser:
    """v1 book frames: `[chanId, {"as": [...], "bs": [...]}, "book-N", pair]` (snapshot) and
    `[chanId, {"a": [...]}, {"b": [...], "c": "crc"}, "book-N", pair]` (update; `a`/`b` may share one dict).
    Levels are `[price, volume, timestamp(, "r")]`."""

    def __init__(self, shard: int = 0) -> None:
        self.shard = shard

    def parse(self, raw: bytes | str, ingest_us: int) -> list[RawEvent]:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError("malformed_json", str(exc)) from None
        if isinstance(msg, dict):
            if msg.get("event") == "error" or msg.get("status") == "error":
                raise ParseError("server_error", str(msg)[:200])
            return []  # heartbeat, systemStatus, subscriptionStatus
        if not isinstance(msg, list) or len(msg) < 4:
            raise ParseError("unexpected_shape", str(msg)[:200])
        channel, pair = msg[-2], msg[-1]
        if not isinstance(channel, str) or not channel.startswith("book-"):
            return []
        try:
            depth = int(channel[5:])
            bodies = msg[1:-2]
            bids: list[list[str]] = []
            asks: list[list[str]] = []
            checksum = None
            snapshot = False
            newest = 0
            for body in bodies:
                for key, side in (("as", asks), ("bs", bids), ("a", asks), ("b", bids)):
                    levels = body.get(key)
                    if levels is None:
                        continue
                    snapshot = snapshot or len(key) == 2
                    for level in levels:
                        side.append([level[0], level[1]])
                        newest = max(newest, _seconds_text_to_us(level[2]))
                if "c" in body:
                    checksum = int(body["c"])
            kind = Kind.DEPTH_SNAPSHOT if snapshot else Kind.DEPTH_DIFF
            return [
                RawEvent(
                    EXCHANGE, Market.SPOT, normalize_pair(pair), pair, kind, newest or None, ingest_us,
                    self.shard, -1, (bids, asks), checksum=checksum, book_depth=depth,
                )
            ]  # fmt: skip
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ParseError("missing_field", f"{exc!r} in {str(msg)[:200]}") from None


class KrakenV2Parser:
    """v2 `book` frames `{"channel":"book","type":"snapshot"|"update","data":[{symbol,bids,asks,checksum,
    timestamp}]}`; `depth` is what this connection subscribed with (default 10)."""

    def __init__(self, depth: int = 10, shard: int = 0) -> None:
        self.depth, self.shard = depth, shard

    def parse(self, raw: bytes | str, ingest_us: int) -> list[RawEvent]:
        try:
            msg = json.loads(raw, parse_float=str, parse_int=str)
        except ValueError as exc:
            raise ParseError("malformed_json", str(exc)) from None
        if not isinstance(msg, dict):
            raise ParseError("unexpected_shape", type(msg).__name__)
        if msg.get("success") == "false" or msg.get("success") is False:
            raise ParseError("server_error", str(msg)[:200])
        if msg.get("channel") != "book":
            return []  # heartbeat, status, acks, other channels
        try:
            kind = Kind.DEPTH_SNAPSHOT if msg["type"] == "snapshot" else Kind.DEPTH_DIFF
            out = []
            for entry in msg["data"]:
                ts = entry.get("timestamp")
                out.append(
                    RawEvent(
                        EXCHANGE, Market.SPOT, entry["symbol"].replace("/", "-"), entry["symbol"], kind,
                        rfc3339_us(ts) if ts else None, ingest_us, self.shard, -1,
                        ([[lv["price"], lv["qty"]] for lv in entry.get("bids", [])],
                         [[lv["price"], lv["qty"]] for lv in entry.get("asks", [])]),
                        checksum=int(entry["checksum"]), book_depth=self.depth,
                    )
                )  # fmt: skip
            return out
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ParseError("missing_field", f"{exc!r} in {str(msg)[:200]}") from None
