"""OKX v5 public frames -> `RawEvent` (exchange-protocols.md §4).

Book channels (`books`, `books5`, `books-l2-tbt`, `books50-l2-tbt`): `snapshot` -> `DEPTH_SNAPSHOT`,
`update` -> `DEPTH_DIFF`; `seq` = `seqId`, `prev_seq` = `prevSeqId` (both `None` in pre-2023 frames),
`checksum` = the frame's checksum (0 since OKX deprecated it). Levels `[px, sz, "0", n]` become
`[px, sz]`. The market comes from the instrument id: `-SWAP` perp, `BASE-QUOTE-YYMMDD` future, else spot.
"""

from __future__ import annotations

import orjson

from connectors.parse_errors import ParseError
from cryptoflow.model import Kind, Market, RawEvent

EXCHANGE = "okx"
BOOK_CHANNELS = {"books", "books5", "books-l2-tbt", "books50-l2-tbt", "bbo-tbt"}


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


class OkxParser:
    def __init__(self, shard: int = 0) -> None:
        self.shard = shard

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
            return []  # subscribe ack, notice
        try:
            arg = msg["arg"]
            if arg["channel"] not in BOOK_CHANNELS:
                return []
            inst_id = arg["instId"]
            market, symbol = instrument_of(inst_id)
            kind = Kind.DEPTH_SNAPSHOT if msg.get("action", "snapshot") == "snapshot" else Kind.DEPTH_DIFF
            out = []
            for entry in msg["data"]:
                seq, prev = entry.get("seqId"), entry.get("prevSeqId")
                out.append(
                    RawEvent(
                        EXCHANGE, market, symbol, inst_id, kind, int(entry["ts"]) * 1000, ingest_us,
                        self.shard, -1, (_levels(entry.get("bids", [])), _levels(entry.get("asks", []))),
                        seq=None if seq is None else int(seq), prev_seq=None if prev is None else int(prev),
                        checksum=None if entry.get("checksum") is None else int(entry["checksum"]),
                    )
                )  # fmt: skip
            return out
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ParseError("missing_field", f"{exc!r} in {str(msg)[:200]}") from None
