"""OKX v5 public, as the simulator serves it (exchange-protocols.md §4):

  WS   /ws/v5/public   {"op":"subscribe"|"unsubscribe","args":[{"channel","instId"|"instType"}]}, one
       ack per arg ({"event":"subscribe","arg":{...},"connId"}); more than 480 (un)subscribe requests
       on one connection are refused (code 60014); the text `ping` is answered with `pong`
  REST /api/v5/public/instruments?instType=SPOT|SWAP|FUTURES

The recording (cryptofeed `OKX.ws.1.0`, 2022) has no instruments response, so the REST list is built
from the recorded instrument ids: base and quote are the first two `-` parts of the id (`BTC-USDT` ->
BTC/USDT; `UNI-USD-SWAP` -> underlying UNI-USD; `BTC-USD-220527` -> underlying BTC-USD, expiry
220527). That guessing lives here, in the simulator, so the client reads real instrument fields.

The 2022 frames carry no `seqId`/`prevSeqId`. `stamp_seq_ids=True` adds a per-instrument chain
(snapshot `prevSeqId = -1`, each update `prevSeqId` = the previous `seqId`), keeping levels and
checksums as recorded: the shape live OKX sends today, so a dropped frame is visible to the client.
A book subscribed after the replay started gets a snapshot cut from the true book, with the real
checksum of that book and the `seqId` of the last update the replay passed.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from cryptoflow.paths import REPO_ROOT
from cryptoflow.simulator.binance_spot import RestReply
from cryptoflow.simulator.subscribe_replay import Connection, SubscribeReplayVenue, TopicFrame, TrueBook
from cryptoflow.verify import merged_records

OKX_WS = REPO_ROOT / "fixtures" / "external" / "okx" / "cryptofeed_OKX.ws.1.0"
WS_PATH = "/ws/v5/public"
MAX_OPS_PER_CONNECTION = 480  # per hour; a replay never lasts an hour
BOOK_CHANNELS = {"books", "books5", "books-l2-tbt", "books50-l2-tbt"}
SEQ_BASE = 1_000_000


def okx_checksum(book: TrueBook) -> int:
    """CRC32 over the interleaved best 25 `bidPx:bidSz:askPx:askSz` (the simulator's own encoder)."""
    bids, asks = book.sorted_bids()[:25], book.sorted_asks()[:25]
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += [bids[i][0], bids[i][1]]
        if i < len(asks):
            parts += [asks[i][0], asks[i][1]]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def inst_type(inst_id: str) -> str:
    parts = inst_id.split("-")
    if parts[-1] == "SWAP":
        return "SWAP"
    return "FUTURES" if len(parts) == 3 and parts[2].isdigit() else "SPOT"


def instrument_entry(inst_id: str) -> dict:
    parts = inst_id.split("-")
    kind = inst_type(inst_id)
    if kind == "SPOT":
        return {
            "instType": "SPOT",
            "instId": inst_id,
            "baseCcy": parts[0],
            "quoteCcy": parts[1],
            "state": "live",
        }
    uly = f"{parts[0]}-{parts[1]}"
    entry = {"instType": kind, "instId": inst_id, "uly": uly, "instFamily": uly, "baseCcy": "", "quoteCcy": "",
             "settleCcy": parts[0] if parts[1] == "USD" else parts[1], "ctType": "inverse" if parts[1] == "USD"
             else "linear", "state": "live"}  # fmt: skip
    if kind == "FUTURES":
        entry["expTime"] = parts[2]
    return entry


class OkxVenue(SubscribeReplayVenue):
    name = "okx"

    def __init__(self, frames: list[TopicFrame], drop: set[tuple[str, int]] | None = None) -> None:
        super().__init__({WS_PATH: frames}, drop)
        self.inst_ids = sorted(
            {
                str(f.topic[1])
                for f in frames
                if isinstance(f.topic, tuple) and f.topic[0] != "liquidation-orders"
            }
        )
        self.pings = 0

    @classmethod
    def from_cryptofeed_v1(
        cls, path: Path = OKX_WS, stamp_seq_ids: bool = False, drop: set[tuple[str, int]] | None = None
    ) -> OkxVenue:
        return cls.from_recordings([path], stamp_seq_ids, drop)

    @classmethod
    def from_recordings(
        cls, paths: list[Path], stamp_seq_ids: bool = False, drop: set[tuple[str, int]] | None = None
    ) -> OkxVenue:
        """Any recording format `cryptoflow verify` reads (cryptoflow capture, cryptofeed v3 and v1)."""
        frames = []
        last_seq: dict[str, int] = {}
        for record in merged_records([Path(p) for p in paths]):
            if record.kind != "recv":
                continue
            msg = orjson.loads(record.data)
            if "event" in msg or "arg" not in msg:
                continue  # recorded acks: the simulator answers with its own
            arg = msg["arg"]
            topic = (arg["channel"], arg.get("instId") or arg.get("instType"))
            text, book = record.data, None
            if arg["channel"] in BOOK_CHANNELS:
                snapshot = msg.get("action", "snapshot") == "snapshot"
                for entry in msg["data"]:
                    if stamp_seq_ids:
                        prev = -1 if snapshot else last_seq.get(topic[1], SEQ_BASE)
                        seq = last_seq.get(topic[1], SEQ_BASE) + 1
                        entry["prevSeqId"], entry["seqId"] = prev, seq
                        last_seq[topic[1]] = seq
                    ids = {"seqId": entry.get("seqId"), "ts": entry.get("ts")}
                    book = (topic, snapshot, entry.get("bids", []), entry.get("asks", []), ids)
                if stamp_seq_ids:
                    text = orjson.dumps(msg).decode()
            frames.append(TopicFrame(record.ts, topic, text, book))
        return cls(frames, drop)

    # ------------------------------------------------------------------ WebSocket protocol
    def handle_request(self, conn: Connection, text: str) -> list[str]:
        if text == "ping":
            self.pings += 1
            return ["pong"]
        try:
            msg = orjson.loads(text)
            op, args = msg["op"], msg["args"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.sub_stats.refused["malformed"] += 1
            return [
                orjson.dumps(
                    {"event": "error", "code": "60012", "msg": f"Invalid request: {text[:100]}"}
                ).decode()
            ]
        self.sub_stats.requests[(conn.path, op)] += 1
        conn.ops += 1
        if conn.ops > MAX_OPS_PER_CONNECTION:
            self.sub_stats.refused["too_many_ops"] += 1
            return [
                orjson.dumps({"event": "error", "code": "60014", "msg": "Requests too frequent."}).decode()
            ]
        if op not in ("subscribe", "unsubscribe"):
            self.sub_stats.refused["unknown_op"] += 1
            return [orjson.dumps({"event": "error", "code": "60012", "msg": f"Invalid op {op}"}).decode()]
        replies = []
        for arg in args:
            key = arg.get("instId") or arg.get("instType")
            if "instId" in arg and arg["instId"] not in self.inst_ids:
                self.sub_stats.refused["unknown_instrument"] += 1
                replies.append(orjson.dumps({"event": "error", "code": "60018",
                                             "msg": f"Wrong URL or channel:{arg['channel']},instId:{key} doesn't exist"
                                             }).decode())  # fmt: skip
                continue
            topic = (arg["channel"], key)
            if op == "subscribe":
                conn.subscribed.add(topic)
                conn.first_subscribe.set()
            else:
                conn.subscribed.discard(topic)
            self.sub_stats.topics[(op, topic)] += 1
            replies.append(orjson.dumps({"event": op, "arg": arg, "connId": "sim"}).decode())
        return replies

    def book_snapshot(self, conn: Connection, topic: Hashable) -> str | None:
        book = conn.books.get(topic)
        if book is None:
            return None
        entry = {"asks": book.sorted_asks(), "bids": book.sorted_bids(), "ts": book.ids.get("ts"),
                 "checksum": okx_checksum(book)}  # fmt: skip
        if book.ids.get("seqId") is not None:
            entry["prevSeqId"], entry["seqId"] = -1, book.ids["seqId"]
        channel, inst_id = topic
        return orjson.dumps({"arg": {"channel": channel, "instId": inst_id}, "action": "snapshot",
                             "data": [entry]}).decode()  # fmt: skip

    # ------------------------------------------------------------------ REST
    def rest(self, path: str) -> RestReply | None:
        parts = urlsplit(path)
        if parts.path != "/api/v5/public/instruments":
            return None
        wanted = parse_qs(parts.query).get("instType", [""])[0]
        if wanted not in ("SPOT", "SWAP", "FUTURES", "MARGIN", "OPTION"):
            return RestReply(
                400, orjson.dumps({"code": "51000", "msg": "Parameter instType error", "data": []})
            )
        data = [instrument_entry(i) for i in self.inst_ids if inst_type(i) == wanted]
        return RestReply(200, orjson.dumps({"code": "0", "msg": "", "data": data}))
