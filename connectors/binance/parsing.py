"""Binance spot message parsing: combined-stream frames and REST bodies -> `RawEvent`.

Levels are normalized to `(bids, asks)` lists of `[price, qty]` decimal strings, so operators never see
exchange-specific shapes. Control messages (subscribe acks) parse to `None`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import msgspec
import orjson

from connectors.parse_errors import ParseError
from cryptoflow.level_block import BlockLevels, DepthGroup, DepthRead
from cryptoflow.model import BUY, LONG, SELL, SHORT, Funding, Kind, Liquidation, Market, RawEvent

try:  # the compiled read decoder (setup.py, optional): without it reads take the msgspec path below
    from connectors.binance._depth import decode as _c_decode
    from connectors.binance._depth import decode_groups as _c_decode_groups
except ImportError:  # pragma: no cover - installs without a C compiler
    _c_decode = _c_decode_groups = None

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
    if data is None and "e" in msg:
        data = msg  # raw stream (`/ws`) frames are not wrapped
    if data is None:
        if "result" in msg and "id" in msg:
            return None  # SUBSCRIBE ack
        if "code" in msg:
            raise ParseError("server_error", str(msg)[:200])
        raise ParseError("unexpected_shape", str(msg)[:200])
    if not isinstance(data, dict):  # e.g. `"data":[...]`: would fail below as an AttributeError
        raise ParseError("unexpected_shape", str(msg)[:200])
    try:
        return _parse_data(data, instruments, shard, ingest_us)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError("missing_field", f"{exc!r} in {str(data)[:200]}") from None


_DEPTH_DIFF = Kind.DEPTH_DIFF


class _DepthData(msgspec.Struct):
    """The hot shape's `data`: exactly the fields `parse_ws_frame` reads from a `depthUpdate`. Ids are
    strict JSON integers (no floats, strings or booleans); `pu` may be absent (spot) but not null."""

    e: Literal["depthUpdate"]
    E: int
    s: str
    U: int
    u: int
    b: list
    a: list
    pu: int | msgspec.UnsetType = msgspec.UNSET


class _DepthFrame(msgspec.Struct):
    data: _DepthData


_DEPTH_BATCH = msgspec.json.Decoder(list[_DepthFrame])
_UNSET = msgspec.UNSET


def parse_ws_frames(
    raws: list[bytes | str],
    instruments: dict[str, Instrument],
    shard: int,
    ingest_us: int,
    on_error: Callable[[bytes | str, ParseError], None],
) -> tuple[list[RawEvent], list[bytes | str]]:
    """A batch of frames -> (events, the frame of each event), in order; control frames yield nothing
    and a bad frame goes to `on_error` (the batch goes on). Same results as `parse_ws_frame` per frame.

    Hot case, a read of nothing but combined-stream `depthUpdate` frames: ONE typed msgspec decode of
    the frames joined into a JSON array (no dict per frame, no key strings; about half of
    `orjson.loads` per frame). Any frame that does not fit that shape makes the whole batch take the
    per-frame path (`_parse_frames_one_by_one`), which classifies every odd frame.

    Fastest case, the compiled decoder (`_depth.c`): the same strict shape decoded in C, levels kept in
    one buffer block per read (`BlockLevels` payloads, no Python object per level). It declines
    anything unusual (None) and the read goes on to the paths above, unchanged."""
    if _c_decode is not None and type(raws) is list:
        columns = _c_decode(raws)
        if columns is not None:
            return _block_events(columns, raws, instruments, shard, ingest_us, on_error)
    n = len(raws)
    if n > 1:
        decoded = _decode_depth_batch(raws)
        if decoded is not None:
            return _depth_events(decoded, raws, instruments, shard, ingest_us, on_error)
    return _parse_frames_one_by_one(raws, instruments, shard, ingest_us, on_error)


def parse_depth_read(
    raws: list[bytes | str], instruments: dict[str, Instrument], shard: int, ingest_us: int
) -> DepthRead | None:
    """A read of nothing but depth diffs of known symbols as one `DepthRead` (per-symbol column groups,
    levels in one block), or None: anything else (another event, a malformed frame, an unknown symbol,
    no compiler) is for `parse_ws_frames`, which classifies and counts it."""
    if _c_decode_groups is None or type(raws) is not list:
        return None
    decoded = _c_decode_groups(raws)
    if decoded is None:
        return None
    columns, block = decoded
    groups = []
    get = instruments.get
    for cols in columns:
        inst = get(cols[0])
        if inst is None:
            return None
        groups.append(DepthGroup(
            EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, shard, ingest_us, block, cols
        ))  # fmt: skip
    return DepthRead(groups, len(raws))


def _decode_depth_batch(raws: list[bytes | str]) -> list[_DepthFrame] | None:
    """The frames as one JSON array, decoded in one call; None if any frame is not a depth diff. Each
    frame must be one JSON object on its own (`{` ... `}`) and the array must have one element per
    frame, so no frame's text can merge with its neighbour's."""
    try:
        first = raws[0]
        if type(first) is str:
            if not all(r[:1] == "{" and r[-1:] == "}" for r in raws):
                return None
            joined: str | bytes = "[" + ",".join(raws) + "]"  # type: ignore[arg-type]
        else:
            if not all(r[:1] == b"{" and r[-1:] == b"}" for r in raws):
                return None
            joined = b"[" + b",".join(raws) + b"]"  # type: ignore[arg-type]
        frames = _DEPTH_BATCH.decode(joined)
    except (msgspec.DecodeError, TypeError):
        return None
    return frames if len(frames) == len(raws) else None


def _depth_events(
    frames: list[_DepthFrame],
    raws: list[bytes | str],
    instruments: dict[str, Instrument],
    shard: int,
    ingest_us: int,
    on_error: Callable[[bytes | str, ParseError], None],
) -> tuple[list[RawEvent], list[bytes | str]]:
    """Events of a read the typed msgspec decode took."""
    fields = [
        (d.s, d.E, d.U, d.u, None if d.pu is _UNSET else d.pu, (d.b, d.a)) for d in (f.data for f in frames)
    ]
    return _decoded_events(fields, raws, instruments, shard, ingest_us, on_error)


def _block_events(
    columns: tuple,
    raws: list[bytes | str],
    instruments: dict[str, Instrument],
    shard: int,
    ingest_us: int,
    on_error: Callable[[bytes | str, ParseError], None],
) -> tuple[list[RawEvent], list[bytes | str]]:
    """Events of a read the compiled decoder took: per-frame scalars from its lists, levels by reference."""
    symbols, times, firsts, lasts, prevs, block = columns
    payloads = map(partial(BlockLevels, block), range(len(symbols)))
    fields = zip(symbols, times, firsts, lasts, prevs, payloads, strict=True)
    return _decoded_events(fields, raws, instruments, shard, ingest_us, on_error)


def _decoded_events(
    fields: Iterable[tuple[str, int, int, int, int | None, Any]],
    raws: list[bytes | str],
    instruments: dict[str, Instrument],
    shard: int,
    ingest_us: int,
    on_error: Callable[[bytes | str, ParseError], None],
) -> tuple[list[RawEvent], list[bytes | str]]:
    """One depth-diff event per decoded frame `(symbol, E, U, u, pu, levels)`; a symbol we do not know
    sends the whole read down the per-frame path, which counts it (its neighbours are parsed the same way)."""
    events: list[RawEvent] = []
    new_event, get = RawEvent, instruments.get
    for sym, ts, first, last, prev, levels in fields:
        inst = get(sym)
        if inst is None:
            return _parse_frames_one_by_one(raws, instruments, shard, ingest_us, on_error)
        events.append(new_event(
            EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, _DEPTH_DIFF, ts * 1000,
            ingest_us, shard, -1, levels, first, last, prev,
        ))  # fmt: skip
    return events, raws


def _parse_frames_one_by_one(
    raws: list[bytes | str],
    instruments: dict[str, Instrument],
    shard: int,
    ingest_us: int,
    on_error: Callable[[bytes | str, ParseError], None],
) -> tuple[list[RawEvent], list[bytes | str]]:
    """The per-frame path of `parse_ws_frames` (any batch with a frame that is not a depth diff).

    Lean on the hot shape, a combined-stream `depthUpdate`: one dictionary walk over what orjson built,
    the level lists kept as orjson made them (lists of [price, qty] strings) and no per-frame
    function layers. Every other shape, and anything unexpected on this one (missing keys, non-integer
    ids, unknown symbols), takes `parse_ws_frame` and its error classification."""
    events: list[RawEvent] = []
    kept: list[bytes | str] = []
    loads, new_event = orjson.loads, RawEvent
    for raw in raws:
        try:
            data = loads(raw)["data"]
            if data["e"] == "depthUpdate":
                inst = instruments[data["s"]]
                first, last, ts = data["U"], data["u"], data["E"]
                prev = data.get("pu")
                if type(first) is int and type(last) is int and type(ts) is int and (
                    prev is None or type(prev) is int
                ) and ("pu" not in data or prev is not None):  # fmt: skip
                    events.append(new_event(
                        EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, _DEPTH_DIFF,
                        ts * 1000, ingest_us, shard, -1, (data["b"], data["a"]), first, last, prev,
                    ))  # fmt: skip
                    kept.append(raw)
                    continue
        except Exception:  # any surprise: the full parser below classifies it
            pass
        try:
            event = parse_ws_frame(raw, instruments, shard, ingest_us)
        except ParseError as exc:
            on_error(raw, exc)
            continue
        if event is not None:
            events.append(event)
            kept.append(raw)
    return events, kept


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
    if event_type == "markPriceUpdate":
        inst = _instrument(instruments, data["s"])
        funding = Funding(
            data.get("r") or None, int(data["T"]) * 1000 if data.get("T") else None,
            data.get("p"), data.get("i"), data.get("P"),
        )  # fmt: skip
        return RawEvent(
            EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, Kind.FUNDING,
            int(data["E"]) * 1000, ingest_us, shard, -1, funding, seq=int(data["E"]),
        )  # fmt: skip
    if event_type == "forceOrder":
        order = data["o"]
        inst = _instrument(instruments, order["s"])
        # The order closes the position: a SELL liquidation order liquidates a long.
        side = {"SELL": LONG, "BUY": SHORT}[order["S"]]
        liq = Liquidation(side, order["p"], order["q"], order.get("ap"), order.get("z"), order.get("X"))
        return RawEvent(
            EXCHANGE, inst.market, inst.symbol, inst.exchange_symbol, Kind.LIQUIDATION,
            int(order["T"]) * 1000, ingest_us, shard, -1, liq, seq=int(data["E"]),
        )  # fmt: skip
    if event_type in ("kline", "24hrTicker", "24hrMiniTicker", "serverShutdown"):
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


# USD-M `contractType` -> market. Delivery contracts are `future`; anything else listed is perpetual.
FUTURE_CONTRACT_TYPES = {"CURRENT_QUARTER", "NEXT_QUARTER", "CURRENT_MONTH", "NEXT_MONTH"}


def usdm_market(contract_type: str | None) -> str:
    return Market.FUTURE if contract_type in FUTURE_CONTRACT_TYPES else Market.PERP


def parse_exchange_info(body: bytes | str, market: str) -> dict[str, Instrument]:
    """`GET /api/v3/exchangeInfo` (spot) or `/fapi/v1/exchangeInfo` (USD-M) -> exchange symbol ->
    instrument, base/quote from the exchange. For USD-M (`market` perp) each symbol's market comes from
    its `contractType`: `PERPETUAL` -> perp, quarterly/monthly delivery -> future."""
    msg = _loads(body)
    if not isinstance(msg, dict) or not isinstance(msg.get("symbols"), list):
        raise ParseError("bad_exchange_info", str(msg)[:200])
    out = {}
    for entry in msg["symbols"]:
        try:
            base, quote, name = entry["baseAsset"], entry["quoteAsset"], entry["symbol"]
        except (KeyError, TypeError):
            raise ParseError("bad_exchange_info", str(entry)[:200]) from None
        kind = market if market == Market.SPOT else usdm_market(entry.get("contractType"))
        out[name] = Instrument(name, f"{base}-{quote}", base, quote, kind)
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
