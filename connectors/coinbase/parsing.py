"""Coinbase Advanced Trade frames -> `RawEvent` (exchange-protocols.md §5).

One `CoinbaseParser` per connection, because `sequence_num` is per connection and shared by every
channel and product: the parser checks it on every frame (`operators.sequencing.coinbase`). A repeated
or older number drops the frame; a jump yields one `CONNECTION_GAP` event per product seen on the
connection (every book on it is invalid until its next snapshot) before the frame's own events.
`l2_data` events: `snapshot` -> `DEPTH_SNAPSHOT`, `update` -> `DEPTH_DIFF`, `seq` = `sequence_num`,
sides `bid`/`offer` -> `(bids, asks)` of `[price_level, new_quantity]`.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from connectors.parse_errors import ParseError
from cryptoflow.model import Kind, Market, RawEvent
from operators.sequencing.coinbase import connection_verdict
from operators.sequencing.verdict import Verdict

EXCHANGE = "coinbase"


def rfc3339_us(text: str) -> int:
    """`2026-08-09T21:05:48.483587501Z` -> epoch µs (nanoseconds truncated; no float on the way)."""
    base, _, frac = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(base + "+00:00").timestamp())
    return seconds * 1_000_000 + int((frac + "000000")[:6])


class CoinbaseParser:
    def __init__(self, shard: int = 0) -> None:
        self.shard = shard
        self.last_seq: int | None = None
        self.products: dict[str, None] = {}  # products with a book on this connection, in order
        self.dropped = 0  # late/repeated frames

    def parse(self, raw: bytes | str, ingest_us: int) -> list[RawEvent]:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError("malformed_json", str(exc)) from None
        if not isinstance(msg, dict):
            raise ParseError("unexpected_shape", type(msg).__name__)
        if msg.get("type") == "error":
            raise ParseError("server_error", str(msg)[:200])
        try:
            seq = int(msg["sequence_num"])
            out: list[RawEvent] = []
            verdict = connection_verdict(self.last_seq, seq)
            if verdict is Verdict.STALE:
                self.dropped += 1
                return []
            ts = rfc3339_us(msg["timestamp"])
            if verdict is Verdict.GAP:
                missing = (self.last_seq + 1, seq - 1)  # type: ignore[operator]
                for product in self.products:
                    out.append(
                        RawEvent(
                            EXCHANGE, Market.SPOT, product, product, Kind.CONNECTION_GAP, ts, ingest_us,
                            self.shard, -1, None, first_seq=missing[0], seq=missing[1],
                        )
                    )  # fmt: skip
            self.last_seq = seq
            if msg.get("channel") == "l2_data":
                for event in msg["events"]:
                    out.append(self._book(event, seq, ts, ingest_us))
            return out
        except (KeyError, TypeError, ValueError) as exc:
            raise ParseError("missing_field", f"{exc!r} in {str(msg)[:200]}") from None

    def _book(self, event: dict, seq: int, ts: int, ingest_us: int) -> RawEvent:
        product = event["product_id"]
        self.products[product] = None
        kind = Kind.DEPTH_SNAPSHOT if event["type"] == "snapshot" else Kind.DEPTH_DIFF
        bids: list[list[str]] = []
        asks: list[list[str]] = []
        for u in event["updates"]:
            side = u["side"]
            level = [u["price_level"], u["new_quantity"]]
            if side == "bid":
                bids.append(level)
            elif side in ("offer", "ask"):
                asks.append(level)
            else:
                raise ParseError("unexpected_shape", f"side {side!r}")
        return RawEvent(
            EXCHANGE,
            Market.SPOT,
            product,
            product,
            kind,
            ts,
            ingest_us,
            self.shard,
            -1,
            (bids, asks),
            seq=seq,
        )
