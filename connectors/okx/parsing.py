"""OKX v5 public frames -> `RawEvent` (exchange-protocols.md §4).

Book channels (`books`, `books5`, `books-l2-tbt`, `books50-l2-tbt`): `snapshot` -> `DEPTH_SNAPSHOT`,
`update` -> `DEPTH_DIFF`; `seq` = `seqId`, `prev_seq` = `prevSeqId` (both `None` in pre-2023 frames),
`checksum` = the frame's checksum (0 since OKX deprecated it). Levels `[px, sz, "0", n]` become
`[px, sz]`.

Other channels: `trades` -> `TRADE` `(tradeId, px, sz, side)` (`side` is the taker side);
`funding-rate` -> `FUNDING` (`fundingRate` applies at `fundingTime`, the next settlement; no mark or
index price on this channel); `liquidation-orders` (subscribed per `instType`, so it carries every
instrument of that type: instruments not in the map are skipped, not errors) -> one `LIQUIDATION` per
`details` entry, payload `(long|short, bkPx, sz)`: the liquidated position is `posSide` when it is
`long`/`short`; in net mode (`posSide: net`) the closing order's `side` tells it: `buy` closes (so
liquidates) a short, `sell` a long. `sz` is in contracts for SWAP/FUTURES.

Market and symbol come from the instrument map built from REST `/api/v5/public/instruments`
(`connectors/okx/instruments.py`); without a map (recordings) they are derived from the instrument id
(`-SWAP` perp, `BASE-QUOTE-YYMMDD` future, else spot).

`event: notice` frames (e.g. code 64008, "reconnect: service upgrade") are kept in `notices` for the
client; `event: error` raises `server_error`.
"""

from __future__ import annotations

import orjson

from connectors.parse_errors import ParseError
from cryptoflow.model import LONG, SHORT, Funding, Kind, Liquidation, Market, RawEvent

EXCHANGE = "okx"
BOOK_CHANNELS = {"books", "books5", "books-l2-tbt", "books50-l2-tbt", "bbo-tbt"}
_CLOSING_ORDER_LIQUIDATES = {"buy": SHORT, "sell": LONG}


def instrument_of(inst_id: str) -> tuple[str, str]:
    """`UNI-USD-SWAP` -> (perp, UNI-USD); `BTC-USD-220527` -> (future, BTC-USD); `BTC-USDT` -> spot."""
    parts = inst_id.split("-")
    if len(parts) == 3 and parts[2] == "SWAP":
        return Market.PERP, f"{parts[0]}-{parts[1]}"
    if len(parts) == 3 and parts[2].isdigit():
        return Market.FUTURE, f"{parts[0]}-{parts[1]}"
    return Market.SPOT, inst_id


def _levels(raw: list) -> list[list[str]]:
    return [[lvl[0], lvl[1]] for lvl in raw]


def liquidated_position(detail: dict) -> str:
    pos_side = detail.get("posSide")
    if pos_side in (LONG, SHORT):
        return pos_side
    return _CLOSING_ORDER_LIQUIDATES[detail["side"]]


class OkxParser:
    def __init__(self, shard: int = 0, instruments: dict[str, tuple[str, str]] | None = None) -> None:
        """`instruments`: instId -> (market, normalized symbol), from the REST instrument list."""
        self.shard, self.instruments = shard, instruments
        self.notices: list[dict] = []

    def _instrument(self, inst_id: str) -> tuple[str, str]:
        if self.instruments is None:
            return instrument_of(inst_id)
        found = self.instruments.get(inst_id)
        if found is None:
            raise ParseError("unknown_symbol", inst_id)
        return found

    def parse(self, raw: bytes | str, ingest_us: int) -> list[RawEvent]:
        if raw in ("pong", b"pong"):
            return []
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError("malformed_json", str(exc)) from None
        if not isinstance(msg, dict):
            raise ParseError("unexpected_shape", type(msg).__name__)
        if "event" in msg:
            if msg["event"] == "error":
                raise ParseError("server_error", str(msg)[:200])
            if msg["event"] == "notice":
                self.notices.append(msg)
            return []  # subscribe ack, notice
        try:
            channel = msg["arg"]["channel"]
            if channel in BOOK_CHANNELS:
                return self._book(msg, ingest_us)
            if channel == "trades":
                return self._trades(msg, ingest_us)
            if channel == "funding-rate":
                return self._funding(msg, ingest_us)
            if channel == "liquidation-orders":
                return self._liquidations(msg, ingest_us)
            return []
        except ParseError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ParseError("missing_field", f"{exc!r} in {str(msg)[:200]}") from None

    def _event(self, inst_id: str, kind: Kind, ts_ms, ingest_us: int, payload, **ids) -> RawEvent:
        market, symbol = self._instrument(inst_id)
        ts = None if ts_ms in (None, "") else int(ts_ms) * 1000
        return RawEvent(
            EXCHANGE, market, symbol, inst_id, kind, ts, ingest_us, self.shard, -1, payload, **ids
        )

    def _book(self, msg: dict, ingest_us: int) -> list[RawEvent]:
        inst_id = msg["arg"]["instId"]
        kind = Kind.DEPTH_SNAPSHOT if msg.get("action", "snapshot") == "snapshot" else Kind.DEPTH_DIFF
        out = []
        for entry in msg["data"]:
            seq, prev = entry.get("seqId"), entry.get("prevSeqId")
            out.append(
                self._event(
                    inst_id, kind, entry["ts"], ingest_us,
                    (_levels(entry.get("bids", [])), _levels(entry.get("asks", []))),
                    seq=None if seq is None else int(seq), prev_seq=None if prev is None else int(prev),
                    checksum=None if entry.get("checksum") is None else int(entry["checksum"]),
                )
            )  # fmt: skip
        return out

    def _trades(self, msg: dict, ingest_us: int) -> list[RawEvent]:
        return [
            self._event(
                t["instId"], Kind.TRADE, t["ts"], ingest_us, (str(t["tradeId"]), t["px"], t["sz"], t["side"])
            )
            for t in msg["data"]
        ]

    def _funding(self, msg: dict, ingest_us: int) -> list[RawEvent]:
        out = []
        for f in msg["data"]:
            next_ms = f.get("fundingTime")
            state = Funding(f.get("fundingRate") or None, int(next_ms) * 1000 if next_ms else None)
            out.append(self._event(f["instId"], Kind.FUNDING, f.get("ts") or None, ingest_us, state))
        return out

    def _liquidations(self, msg: dict, ingest_us: int) -> list[RawEvent]:
        out = []
        for entry in msg["data"]:
            inst_id = entry["instId"]
            if self.instruments is not None and inst_id not in self.instruments:
                continue  # broadcast per instType: instruments we do not collect
            for d in entry["details"]:
                payload = Liquidation(liquidated_position(d), d["bkPx"], d["sz"])
                out.append(self._event(inst_id, Kind.LIQUIDATION, d["ts"], ingest_us, payload))
        return out
