"""Binance spot message parsing: combined-stream frames and REST bodies -> `RawEvent`.

Levels are normalized to `(bids, asks)` lists of `[price, qty]` decimal strings, so operators never see
exchange-specific shapes. Control messages (subscribe acks) parse to `None`.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from cryptoflow.model import BUY, SELL, Kind, RawEvent

EXCHANGE = "binance"


class ParseError(ValueError):
    """A frame we cannot use; `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


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
            first_seq=int(data["U"]), seq=int(data["u"]), prev_seq=data.get("pu"),
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
    if event_type is None and "u" in data and "b" in data and "B" in data:
        inst = _instrument(instruments, data["s"])
        return RawEvent(
            EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, Kind.BOOK_TICKER,
            None, ingest_us, shard, -1, (data["b"], data["B"], data["a"], data["A"]), seq=int(data["u"]),
        )  # fmt: skip
    if event_type in ("kline", "24hrTicker", "24hrMiniTicker"):
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
