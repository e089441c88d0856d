"""Binance spot message parsing: combined-stream frames and REST bodies -> `RawEvent`.

Levels are normalized to `(bids, asks)` lists of `[price, qty]` decimal strings, so operators never see
exchange-specific shapes. Control messages (subscribe acks) parse to `None`.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from connectors.parse_errors import ParseError
from cryptoflow.model import BUY, SELL, Kind, Market, RawEvent

EXCHANGE = "binance"


@dataclass(frozen=True, slots=True)
class Instrument:
    exchange_symbol: str
    symbol: str  # BASE-QUOTE
    base: str
    quote: str
    market: str


def _loads(raw: bytes | str) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError("malformed_json", str(exc)) from None


def _instrument(instruments: dict[str, Instrument], exchange_symbol: str) -> Instrument:
    inst = instruments.get(exchange_symbol)
    if inst is None:
        raise ParseError("unknown_symbol", exchange_symbol)
    return inst


def parse_ws_frame(
    raw: bytes | str, instruments: dict[str, Instrument], shard: int, ingest_us: int
) -> RawEvent | None:
    msg = _loads(raw)
    if not isinstance(msg, dict):
        raise ParseError("unexpected_shape", type(msg).__name__)
    data = msg.get("data")
    if data is None:
        if "result" in msg and "id" in msg:
            return None  # SUBSCRIBE ack
        if "code" in msg:
            raise ParseError("server_error", str(msg)[:200])
        raise ParseError("unexpected_shape", str(msg)[:200])
    try:
        return _parse_data(data, instruments, shard, ingest_us)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError("missing_field", f"{exc!r} in {str(data)[:200]}") from None


def _parse_data(
    data: dict, instruments: dict[str, Instrument], shard: int, ingest_us: int
) -> RawEvent | None:
    event_type = data.get("e")
    if event_type == "depthUpdate":
        inst = _instrument(instruments, data["s"])
        return RawEvent(
            EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, Kind.DEPTH_DIFF,
            int(data["E"]) * 1000, ingest_us, shard, -1, (data["b"], data["a"]),
            first_seq=int(data["U"]), seq=int(data["u"]),
            prev_seq=int(data["pu"]) if "pu" in data else None,
        )  # fmt: skip
    if event_type in ("aggTrade", "trade"):
        inst = _instrument(instruments, data["s"])
        trade_id = data["a"] if event_type == "aggTrade" else data["t"]
        side = SELL if data["m"] else BUY  # m: buyer is maker, so the taker sold
        return RawEvent(
            EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, Kind.TRADE,
            int(data["T"]) * 1000, ingest_us, shard, -1, (str(trade_id), data["p"], data["q"], side),
            seq=int(trade_id),
        )  # fmt: skip
    if event_type in (None, "bookTicker") and "u" in data and "b" in data and "B" in data:
        inst = _instrument(instruments, data["s"])
        ts = int(data["E"]) * 1000 if "E" in data else None  # USD-M carries E/T, spot does not
        return RawEvent(
            EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, Kind.BOOK_TICKER,
            ts, ingest_us, shard, -1, (data["b"], data["B"], data["a"], data["A"]), seq=int(data["u"]),
        )  # fmt: skip
    if event_type in ("kline", "24hrTicker", "24hrMiniTicker", "markPriceUpdate", "forceOrder"):
        return None
    raise ParseError("unknown_event", str(event_type))


def parse_depth_snapshot(body: bytes | str, inst: Instrument, shard: int, ingest_us: int) -> RawEvent:
    """`GET /api/v3/depth` body. Spot snapshots carry no exchange time (futures ones carry `E`)."""
    msg = _loads(body)
    if not isinstance(msg, dict) or "lastUpdateId" not in msg:
        raise ParseError("bad_snapshot", str(msg)[:200])
    exchange_ts = int(msg["E"]) * 1000 if "E" in msg else None
    return RawEvent(
        EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, Kind.DEPTH_SNAPSHOT,
        exchange_ts, ingest_us, shard, -1, (msg["bids"], msg["asks"]), seq=int(msg["lastUpdateId"]),
    )  # fmt: skip


def parse_exchange_info(body: bytes | str, market: str) -> dict[str, Instrument]:
    """`GET /api/v3/exchangeInfo` -> exchange symbol -> instrument (base/quote from the exchange)."""
    msg = _loads(body)
    if not isinstance(msg, dict) or "symbols" not in msg:
        raise ParseError("bad_exchange_info", str(msg)[:200])
    out = {}
    for entry in msg["symbols"]:
        base, quote = entry["baseAsset"], entry["quoteAsset"]
        out[entry["symbol"]] = Instrument(entry["symbol"], f"{base}-{quote}", base, quote, market)
    return out


class BinanceParser:
    """Parser object for one Binance connection (spot or USD-M): the shape every venue parser has.

    `parse(frame, ingest_us)` returns the frame's `RawEvent`s (empty for acks and channels we do not
    use) and raises `ParseError` for frames it cannot use. `instruments` maps the exchange symbol to
    its instrument; `unknown_symbol` errors name symbols missing from it.
    """

    def __init__(self, instruments: dict[str, Instrument], shard: int = 0) -> None:
        self.instruments, self.shard = instruments, shard

    def parse(self, raw: bytes | str, ingest_us: int) -> list[RawEvent]:
        ev = parse_ws_frame(raw, self.instruments, self.shard, ingest_us)
        return [] if ev is None else [ev]

    def parse_snapshot(self, body: bytes | str, exchange_symbol: str, ingest_us: int) -> RawEvent:
        return parse_depth_snapshot(
            body, _instrument(self.instruments, exchange_symbol), self.shard, ingest_us
        )


class GuessingInstruments(dict):
    """Instrument map for recordings without an instrument list: every symbol is accepted as-is
    (normalized symbol = exchange symbol). Live clients use `parse_exchange_info` instead."""

    def __init__(self, market: str = Market.SPOT) -> None:
        super().__init__()
        self.market = market

    def __missing__(self, key: str) -> Instrument:
        inst = Instrument(key, key, key, "", self.market)
        self[key] = inst
        return inst

    def get(self, key, default=None):  # type: ignore[override]
        return self[key]
