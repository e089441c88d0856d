"""Bybit v5 public frames -> `RawEvent` (exchange-protocols.md §3).

One `BybitParser` per connection: the market (spot / linear / inverse) is a property of the connection
URL, not of the frame. Book frames `orderbook.{depth}.{symbol}`: `snapshot` -> `DEPTH_SNAPSHOT`,
`delta` -> `DEPTH_DIFF`, `seq` = `u` (the continuity id), levels `(bids, asks)` of `[price, qty]` text.
Other topics (trades, tickers, klines) and acks/pongs parse to no events for now.
"""

from __future__ import annotations

import orjson

from connectors.parse_errors import ParseError
from cryptoflow.model import Kind, Market, RawEvent

EXCHANGE = "bybit"

_MARKETS = {"spot": Market.SPOT, "linear": Market.PERP, "inverse": Market.PERP}


def market_of_url(url: str) -> str:
    """`wss://stream.bybit.com/v5/public/linear` -> perp."""
    tail = url.rstrip("/").rsplit("/", 1)[-1]
    if tail not in _MARKETS:
        raise ValueError(f"not a Bybit v5 public spot/linear/inverse URL: {url}")
    return _MARKETS[tail]


class BybitParser:
    def __init__(self, market: str, symbols: dict[str, str] | None = None, shard: int = 0) -> None:
        """`symbols`: exchange symbol -> normalized `BASE-QUOTE`; unknown symbols pass through as-is."""
        self.market, self.symbols, self.shard = market, symbols, shard

    def parse(self, raw: bytes | str, ingest_us: int) -> list[RawEvent]:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError("malformed_json", str(exc)) from None
        if not isinstance(msg, dict):
            raise ParseError("unexpected_shape", type(msg).__name__)
        topic = msg.get("topic")
        if topic is None:
            if msg.get("success") is False:
                raise ParseError("server_error", str(msg)[:200])
            return []  # subscribe ack / pong
        if not topic.startswith("orderbook."):
            return []
        try:
            data = msg["data"]
            kind = {"snapshot": Kind.DEPTH_SNAPSHOT, "delta": Kind.DEPTH_DIFF}[msg["type"]]
            exchange_symbol = data["s"]
            symbol = exchange_symbol if self.symbols is None else self.symbols.get(exchange_symbol)
            if symbol is None:
                raise ParseError("unknown_symbol", exchange_symbol)
            return [
                RawEvent(
                    EXCHANGE, self.market, symbol, exchange_symbol, kind, int(msg["ts"]) * 1000,
                    ingest_us, self.shard, -1, (data["b"], data["a"]), seq=int(data["u"]),
                )
            ]  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ParseError):
                raise
            raise ParseError("missing_field", f"{exc!r} in {str(msg)[:200]}") from None
