"""Bybit v5 public frames -> `RawEvent` (exchange-protocols.md §3).

One `BybitParser` per connection: the market (spot / linear / inverse) is a property of the connection
URL, not of the frame. Topics:

* `orderbook.{depth}.{symbol}`: `snapshot` -> `DEPTH_SNAPSHOT`, `delta` -> `DEPTH_DIFF`, `seq` = `u` (the
  continuity id), levels `(bids, asks)` of `[price, qty]` text.
* `publicTrade.{symbol}`: one `TRADE` per entry, payload `(i, p, v, side)`; `S` is the taker side.
* `tickers.{symbol}` (linear): snapshot + delta where an absent field means "unchanged", so the parser
  keeps the merged ticker per symbol (connection state) and emits one `FUNDING` event
  (`Funding`: `fundingRate`, `nextFundingTime`, `markPrice`, `indexPrice`) whenever a message
  touches one of those fields. Spot tickers carry no funding and give no events.
* `allLiquidation.{symbol}` (linear): one `LIQUIDATION` per entry. Bybit's `S` is the side of the
  liquidated *position*: `"Buy"` = a long position was liquidated, `"Sell"` = a short one.
  Payload `(long|short, p, v)`.
Klines, acks and pongs parse to no events.
"""

from __future__ import annotations

import orjson

from connectors.parse_errors import ParseError
from cryptoflow.model import BUY, LONG, SELL, SHORT, Funding, Kind, Liquidation, Market, RawEvent

EXCHANGE = "bybit"

_MARKETS = {"spot": Market.SPOT, "linear": Market.PERP, "inverse": Market.PERP}
_TAKER_SIDE = {"Buy": BUY, "Sell": SELL}
LIQUIDATED_POSITION = {"Buy": LONG, "Sell": SHORT}  # Bybit allLiquidation `S` -> position side
_FUNDING_FIELDS = ("fundingRate", "nextFundingTime", "markPrice", "indexPrice")


def market_of_url(url: str) -> str:
    """`wss://stream.bybit.com/v5/public/linear` -> perp."""
    tail = url.rstrip("/").rsplit("/", 1)[-1]
    if tail not in _MARKETS:
        raise ValueError(f"not a Bybit v5 public spot/linear/inverse URL: {url}")
    return _MARKETS[tail]


class BybitParser:
    def __init__(
        self,
        market: str,
        symbols: dict[str, str] | None = None,
        shard: int = 0,
        markets: dict[str, str] | None = None,
    ) -> None:
        """`symbols`: exchange symbol -> normalized `BASE-QUOTE`; unknown symbols pass through as-is
        when `symbols` is None, else raise `unknown_symbol`. `markets`: exchange symbol -> market when
        the instrument list says more than the URL (linear dated futures are `future`)."""
        self.market, self.symbols, self.shard = market, symbols, shard
        self.markets = markets or {}
        self.tickers: dict[str, dict] = {}  # merged linear ticker per symbol (snapshot + deltas)

    def _symbol(self, exchange_symbol: str) -> str:
        symbol = exchange_symbol if self.symbols is None else self.symbols.get(exchange_symbol)
        if symbol is None:
            raise ParseError("unknown_symbol", exchange_symbol)
        return symbol

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
        try:
            if topic.startswith("orderbook."):
                return self._book(msg, ingest_us)
            if topic.startswith("publicTrade."):
                return self._trades(msg, ingest_us)
            if topic.startswith("tickers."):
                return self._ticker(msg, ingest_us)
            if topic.startswith("allLiquidation."):
                return self._liquidations(msg, ingest_us)
            return []
        except ParseError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ParseError("missing_field", f"{exc!r} in {str(msg)[:200]}") from None

    def _event(self, exchange_symbol: str, kind: Kind, ts_ms: int | None, ingest_us: int, payload, **ids):
        return RawEvent(
            EXCHANGE, self.markets.get(exchange_symbol, self.market), self._symbol(exchange_symbol),
            exchange_symbol, kind, None if ts_ms is None else int(ts_ms) * 1000, ingest_us, self.shard, -1,
            payload, **ids,
        )  # fmt: skip

    def _book(self, msg: dict, ingest_us: int) -> list[RawEvent]:
        data = msg["data"]
        kind = {"snapshot": Kind.DEPTH_SNAPSHOT, "delta": Kind.DEPTH_DIFF}[msg["type"]]
        return [
            self._event(data["s"], kind, msg["ts"], ingest_us, (data["b"], data["a"]), seq=int(data["u"]))
        ]

    def _trades(self, msg: dict, ingest_us: int) -> list[RawEvent]:
        return [
            self._event(
                t["s"], Kind.TRADE, t["T"], ingest_us, (str(t["i"]), t["p"], t["v"], _TAKER_SIDE[t["S"]])
            )
            for t in msg["data"]
        ]

    def _ticker(self, msg: dict, ingest_us: int) -> list[RawEvent]:
        if self.market == Market.SPOT:
            return []
        data = msg["data"]
        exchange_symbol = data["symbol"]
        if msg.get("type") == "snapshot" or exchange_symbol not in self.tickers:
            self.tickers[exchange_symbol] = dict(data)
        else:
            self.tickers[exchange_symbol].update(data)
        if not any(f in data for f in _FUNDING_FIELDS):
            return []
        state = self.tickers[exchange_symbol]
        next_ms = state.get("nextFundingTime")
        funding = Funding(
            state.get("fundingRate") or None,
            int(next_ms) * 1000 if next_ms not in (None, "", "0") else None,
            state.get("markPrice") or None,
            state.get("indexPrice") or None,
        )
        return [self._event(exchange_symbol, Kind.FUNDING, msg["ts"], ingest_us, funding)]

    def _liquidations(self, msg: dict, ingest_us: int) -> list[RawEvent]:
        data = msg["data"]
        entries = data if isinstance(data, list) else [data]
        return [
            self._event(
                e["s"],
                Kind.LIQUIDATION,
                e["T"],
                ingest_us,
                Liquidation(LIQUIDATED_POSITION[e["S"]], e["p"], e["v"]),
            )
            for e in entries
        ]
