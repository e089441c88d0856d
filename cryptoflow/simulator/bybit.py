"""Bybit v5 public, as the simulator serves it (exchange-protocols.md §3):

  WS   /v5/public/spot, /v5/public/linear   {"op":"subscribe"|"unsubscribe","args":[topics]} acked in
       each market's own style (spot `ret_msg:"subscribe"`, linear `ret_msg:""`); spot refuses more
       than 10 args per request; more than 21,000 characters of args on one connection are refused;
       {"op":"ping"} -> {"op":"ping","ret_msg":"pong",...}
  REST /v5/market/instruments-info?category=spot|linear   the recorded response body

Recordings (`from_recordings`: any format `cryptoflow verify` reads, including CryptoFlow's own
capture): the cryptofeed v3 capture (`from_v3`: a linear and a spot connection, orderbook.200,
publicTrade, tickers, kline, allLiquidation subscribed) and the v1 `orderbook.1` files (`from_v1`).
A book topic subscribed after the replay started gets a snapshot cut from the true book (`u`/`seq` of
the last frame the replay passed), which is what a resync by unsubscribe + subscribe receives.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from cryptoflow.paths import REPO_ROOT
from cryptoflow.simulator.binance_spot import RestReply
from cryptoflow.simulator.subscribe_replay import Connection, SubscribeReplayVenue, TopicFrame
from cryptoflow.verify import merged_records

FIXTURES = REPO_ROOT / "fixtures" / "external" / "bybit"
BYBIT_V3 = FIXTURES / "cryptofeed_v3_BYBIT.jsonl"
BYBIT_V1 = (FIXTURES / "cryptofeed_BYBIT.ws.1.0", FIXTURES / "cryptofeed_BYBIT.ws.2.0")
MAX_SPOT_ARGS = 10
MAX_ARGS_CHARS = 21_000


def _path_of(url: str) -> str:
    return urlsplit(url).path.rstrip("/")


def _frame(ts: float, text: str) -> TopicFrame | None:
    msg = orjson.loads(text)
    topic = msg.get("topic")
    if topic is None:
        return None  # recorded acks / pongs: the simulator answers with its own
    book = None
    if topic.startswith("orderbook."):
        data = msg["data"]
        ids = {"u": data.get("u"), "seq": data.get("seq"), "ts": msg.get("ts")}
        book = (topic, msg["type"] == "snapshot", data["b"], data["a"], ids)
    return TopicFrame(ts, topic, text, book)


def _instruments_from_topics(paths: dict[str, list[TopicFrame]]) -> dict[str, bytes]:
    """The v1 recordings carry no instruments-info body: build one from the recorded symbols, base and
    quote split off the known quote coins (USDT, USDC) - the simulator guesses so the client need not."""
    out = {}
    for path, frames in paths.items():
        category = path.rsplit("/", 1)[-1]
        out[category] = instruments_body(category, sorted({str(f.topic).rsplit(".", 1)[1] for f in frames}))
    return out


def instruments_body(category: str, symbols: list[str]) -> bytes:
    """An instruments-info response listing `symbols` (base and quote split off USDT/USDC)."""
    items = []
    for symbol in symbols:
        quote = next(q for q in ("USDT", "USDC", "") if symbol.endswith(q))
        item = {"symbol": symbol, "baseCoin": symbol[: len(symbol) - len(quote)], "quoteCoin": quote,
                "status": "Trading"}  # fmt: skip
        if category == "linear":
            item["contractType"] = "LinearPerpetual"
        items.append(item)
    body = {
        "retCode": 0,
        "retMsg": "OK",
        "result": {"category": category, "list": items, "nextPageCursor": ""},
    }
    return orjson.dumps(body)


class BybitVenue(SubscribeReplayVenue):
    name = "bybit"

    def __init__(self, paths: dict[str, list[TopicFrame]], instruments: dict[str, bytes],
                 drop: set[tuple[str, int]] | None = None) -> None:  # fmt: skip
        super().__init__(paths, drop)
        self.instruments = instruments  # category -> recorded instruments-info body
        self.pings = 0

    @classmethod
    def from_recordings(cls, paths: list[Path], drop: set[tuple[str, int]] | None = None) -> BybitVenue:
        """Any recording format `cryptoflow verify` reads (cryptoflow capture, cryptofeed v3 and v1):
        received frames grouped by their connection's URL path, instruments-info bodies by category
        (built from the recorded symbols when the recording has none)."""
        frames: dict[str, list[TopicFrame]] = {}
        instruments: dict[str, bytes] = {}
        url_of: dict[str | None, str] = {}
        for record in merged_records([Path(p) for p in paths]):
            if record.kind == "http":
                if "instruments-info" in (record.url or ""):
                    category = parse_qs(urlsplit(record.url).query)["category"][0]
                    instruments[category] = record.data.encode()
                continue
            if record.url:
                url_of[record.conn] = record.url
            url = record.url or url_of.get(record.conn)
            if record.kind == "recv" and url:
                frame = _frame(record.ts, record.data)
                if frame is not None:
                    frames.setdefault(_path_of(url), []).append(frame)
        built = _instruments_from_topics(frames)
        return cls(frames, {c: instruments.get(c, built[c]) for c in built} | instruments, drop)

    @classmethod
    def from_v3(cls, path: Path = BYBIT_V3, drop: set[tuple[str, int]] | None = None) -> BybitVenue:
        return cls.from_recordings([path], drop)

    @classmethod
    def from_v1(
        cls, files: tuple[Path, ...] = BYBIT_V1, drop: set[tuple[str, int]] | None = None
    ) -> BybitVenue:
        return cls.from_recordings(list(files), drop)

    # ------------------------------------------------------------------ WebSocket protocol
    def handle_request(self, conn: Connection, text: str) -> list[str]:
        try:
            msg = orjson.loads(text)
            op, args = msg.get("op"), msg.get("args") or []
        except (orjson.JSONDecodeError, AttributeError):
            self.sub_stats.refused["malformed"] += 1
            return [orjson.dumps({"success": False, "ret_msg": "Invalid request", "op": ""}).decode()]
        req_id = msg.get("req_id", "")
        spot = conn.path.endswith("/spot")
        self.sub_stats.requests[(conn.path, op)] += 1
        if op == "ping":
            self.pings += 1
            return [orjson.dumps({"success": True, "ret_msg": "pong", "conn_id": "sim", "req_id": req_id,
                                  "op": "ping"}).decode()]  # fmt: skip
        if op not in ("subscribe", "unsubscribe"):
            self.sub_stats.refused["unknown_op"] += 1
            return [orjson.dumps({"success": False, "ret_msg": f"unknown op {op}", "op": op}).decode()]
        if spot and len(args) > MAX_SPOT_ARGS:
            self.sub_stats.refused["too_many_args"] += 1
            return [orjson.dumps({"success": False, "ret_msg": f"args size >{MAX_SPOT_ARGS}", "conn_id": "sim",
                                  "req_id": req_id, "op": op}).decode()]  # fmt: skip
        if op == "subscribe":
            total = sum(len(t) for t in conn.subscribed | set(args))
            if total > MAX_ARGS_CHARS:
                self.sub_stats.refused["args_too_long"] += 1
                return [orjson.dumps({"success": False, "ret_msg": "args length exceeds 21000", "op": op,
                                      "req_id": req_id}).decode()]  # fmt: skip
            conn.subscribed.update(args)
            conn.first_subscribe.set()
        else:
            conn.subscribed.difference_update(args)
        for topic in args:
            self.sub_stats.topics[(op, topic)] += 1
        ack = {"success": True, "ret_msg": op if spot else "", "conn_id": "sim", "req_id": req_id, "op": op}
        return [orjson.dumps(ack).decode()]

    def book_snapshot(self, conn: Connection, topic: Hashable) -> str | None:
        book = conn.books.get(topic)
        if book is None or not str(topic).startswith("orderbook."):
            return None
        symbol = str(topic).rsplit(".", 1)[1]
        data = {"s": symbol, "b": book.sorted_bids(), "a": book.sorted_asks(), "u": book.ids.get("u"),
                "seq": book.ids.get("seq")}  # fmt: skip
        return orjson.dumps(
            {"topic": topic, "type": "snapshot", "ts": book.ids.get("ts"), "data": data}
        ).decode()

    # ------------------------------------------------------------------ REST
    def rest(self, path: str) -> RestReply | None:
        parts = urlsplit(path)
        if parts.path != "/v5/market/instruments-info":
            return None
        category = parse_qs(parts.query).get("category", [""])[0]
        body = self.instruments.get(category)
        if body is None:
            return RestReply(
                200, orjson.dumps({"retCode": 10001, "retMsg": "params error: category", "result": {}})
            )
        return RestReply(200, body)
