"""Kraken spot WebSocket book frames -> `RawEvent`, v1 (`wss://ws.kraken.com`) and v2 (`/v2`).

Kraken has no sequence numbers: the checksum after every message is the integrity signal, and it is
computed over the exact price/qty **text**, so both parsers keep it. v1 sends quoted strings; v2 sends
JSON numbers, decoded here with `parse_float=str` so `0.12290` stays `"0.12290"` (a float would lose
the trailing zero and break the checksum). Both set `book_depth` (the subscribed depth Kraken
truncates to without sending deletes) and `checksum` (v1 only on updates, v2 on every message).
The v2 parser keeps one decoder (`json.loads` with hooks builds a new one per call: half its cost) and
remembers the last timestamp's whole second (a book stream changes it once a second).

Lean path (v2 book frames, the hot ones): a frame laid out exactly as Kraken sends a one-book message
(`channel`, `type`, `data` with `symbol`, `bids`, `asks`, `checksum`[, `timestamp`] in that order, no
whitespace) is matched by one anchored regular expression whose number pattern is JSON's own, so the
captured texts are exactly what the decoder's `parse_float=str` would give. The compiled module
(operators/book/_levels.c, `kraken_v2_book`) does the same match in C, ~10x cheaper than the decoder; the
regular expression is the fallback when it is not built. Anything else (other key order, whitespace,
escapes, several books, trades, acks) takes the general path.
"""

from __future__ import annotations

import json
import re

import orjson

from connectors.coinbase.parsing import rfc3339_us
from connectors.parse_errors import ParseError
from cryptoflow.model import Kind, Market, RawEvent

try:  # the compiled lean path (see the module docstring); the regular expression below otherwise
    from operators.book._levels import kraken_v2_book as _compiled_v2_book
except ImportError:  # pragma: no cover - only without a C compiler
    _compiled_v2_book = None

EXCHANGE = "kraken"
_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}


def normalize_pair(pair: str) -> str:
    """`XBT/CHF` -> `BTC-CHF` (v1 uses Kraken's legacy asset codes)."""
    base, _, quote = pair.partition("/")
    return f"{_ASSETS.get(base, base)}-{_ASSETS.get(quote, quote)}"


_V2_DECODER = json.JSONDecoder(parse_float=str, parse_int=str)
_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"  # a JSON number, as its literal text
_V2_LEVELS = rf'(?:\{{"price":{_NUM},"qty":{_NUM}\}}(?:,\{{"price":{_NUM},"qty":{_NUM}\}})*)?'
_V2_BOOK = re.compile(
    r'\{"channel":"book","type":"(snapshot|update)","data":\[\{"symbol":"([^"\\\x00-\x1f]+)",'
    rf'"bids":\[({_V2_LEVELS})\],"asks":\[({_V2_LEVELS})\],"checksum":(0|[1-9][0-9]*)'
    r'(?:,"timestamp":"([^"\\\x00-\x1f]+)")?\}\]\}'
)


def _seconds_text_to_us(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000 + int((frac + "000000")[:6])


def _v2_levels(text: str) -> list[list[str]]:
    """`{"price":P,"qty":Q},...` (already checked by `_V2_BOOK`) -> `[[P, Q], ...]` by plain splits."""
    if not text:
        return []
    return [level.split(',"qty":') for level in text[9:-1].split('},{"price":')]


LeanBook = tuple[bool, str, list[list[str]], list[list[str]], int, str | None]


def regex_v2_book(text: str) -> LeanBook | None:
    """The lean path in Python: (is_snapshot, symbol, bids, asks, checksum, timestamp), or None."""
    match = _V2_BOOK.fullmatch(text)
    if match is None:
        return None
    kind, symbol, bids, asks, checksum, ts = match.groups()
    return kind == "snapshot", symbol, _v2_levels(bids), _v2_levels(asks), int(checksum), ts


lean_v2_book = _compiled_v2_book or regex_v2_book


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
        self._second: tuple[str, int] = ("", 0)  # the last timestamp's text up to the '.', its epoch µs

    def _ts_us(self, text: str) -> int:
        """`rfc3339_us`, with the whole second of the previous call reused."""
        base, dot, frac = text.partition(".")
        if not dot or not frac.endswith("Z"):
            return rfc3339_us(text)
        if base != self._second[0]:
            self._second = (base, rfc3339_us(base + "Z"))
        return self._second[1] + int((frac[:-1] + "000000")[:6])

    def parse(self, raw: bytes | str, ingest_us: int) -> list[RawEvent]:
        try:
            text = raw if isinstance(raw, str) else raw.decode()
        except UnicodeDecodeError as exc:
            raise ParseError("malformed_json", str(exc)) from None
        book = lean_v2_book(text)
        if book is not None:
            return [self._lean_book(book, ingest_us)]
        try:
            msg = _V2_DECODER.decode(text)
        except ValueError as exc:  # JSONDecodeError
            raise ParseError("malformed_json", str(exc)) from None
        if not isinstance(msg, dict):
            raise ParseError("unexpected_shape", type(msg).__name__)
        if msg.get("success") == "false" or msg.get("success") is False:
            raise ParseError("server_error", str(msg)[:200])
        channel = msg.get("channel")
        if channel == "trade":
            return self._trades(msg, ingest_us)
        if channel != "book":
            return []  # heartbeat, status, acks, other channels
        try:
            kind = Kind.DEPTH_SNAPSHOT if msg["type"] == "snapshot" else Kind.DEPTH_DIFF
            out = []
            for entry in msg["data"]:
                ts = entry.get("timestamp")
                out.append(
                    RawEvent(
                        EXCHANGE, Market.SPOT, entry["symbol"].replace("/", "-"), entry["symbol"], kind,
                        self._ts_us(ts) if ts else None, ingest_us, self.shard, -1,
                        ([[lv["price"], lv["qty"]] for lv in entry.get("bids", [])],
                         [[lv["price"], lv["qty"]] for lv in entry.get("asks", [])]),
                        checksum=int(entry["checksum"]), book_depth=self.depth,
                    )
                )  # fmt: skip
            return out
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ParseError("missing_field", f"{exc!r} in {str(msg)[:200]}") from None

    def _lean_book(self, book: LeanBook, ingest_us: int) -> RawEvent:
        """The event the general path builds for a one-book frame, from the lean path's fields."""
        snapshot, symbol, bids, asks, checksum, ts = book
        return RawEvent(
            EXCHANGE, Market.SPOT, symbol.replace("/", "-"), symbol,
            Kind.DEPTH_SNAPSHOT if snapshot else Kind.DEPTH_DIFF,
            self._ts_us(ts) if ts else None, ingest_us, self.shard, -1, (bids, asks),
            checksum=checksum, book_depth=self.depth,
        )  # fmt: skip

    def _trades(self, msg: dict, ingest_us: int) -> list[RawEvent]:
        """`trade` frames: `side` is the taker side; payload `(trade_id, price, qty, side)` as text."""
        try:
            out = []
            for t in msg["data"]:
                side = t["side"]
                if side not in ("buy", "sell"):
                    raise ParseError("unexpected_shape", f"trade side {side!r}")
                out.append(
                    RawEvent(
                        EXCHANGE, Market.SPOT, t["symbol"].replace("/", "-"), t["symbol"], Kind.TRADE,
                        rfc3339_us(t["timestamp"]), ingest_us, self.shard, -1,
                        (str(t["trade_id"]), t["price"], t["qty"], side),
                    )
                )  # fmt: skip
            return out
        except ParseError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ParseError("missing_field", f"{exc!r} in {str(msg)[:200]}") from None
