"""Kraken spot WebSocket v2 replayed from a recording (a `cryptoflow capture` of a live session or of
the synthetic venue), behind the protocol of `kraken.py` (exchange-protocols.md §6):

  WS   /v2                   `status` on connect; `subscribe`/`unsubscribe` {channel: book|trade,
                             symbol: [...]} acked per symbol; `ping` -> `pong`
  REST /0/public/AssetPairs  the recorded body (a capture's instrument map written back), else one
                             built from the recorded symbols

Each connection replays the recorded `book`/`trade` frames of the (channel, symbol) pairs it subscribed
to, in recorded order (`subscribe_replay.py`). The venue keeps each recorded book as the replay passes
it, so a book subscribed after the replay started (a client's resync after a checksum mismatch) gets a
snapshot of that book with its real checksum. Level text is kept exactly as recorded (checksums are
computed over the digits as sent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Hashable
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.server import ServerConnection

from connectors.recordings.instrument_bodies import kraken_asset_pairs
from cryptoflow.simulator.binance_spot import RestReply
from cryptoflow.simulator.subscribe_replay import Connection, SubscribeReplayVenue, TopicFrame
from cryptoflow.simulator.synthetic.encoders import rfc3339
from cryptoflow.verify import merged_records
from operators.book.checksums import kraken_checksum
from operators.book.levels import OrderBook

WS_PATH = "/v2"
ASSET_PAIRS_PATH = "/0/public/AssetPairs"
CHANNELS = ("book", "trade")


def _levels(levels: list[dict]) -> list[list[str]]:
    return [[str(level["price"]), str(level["qty"])] for level in levels]


def _frame(ts: float, text: str) -> TopicFrame | None:
    """A recorded data frame under its (channel, symbol) topic; status, heartbeats, acks -> None."""
    msg = json.loads(text, parse_float=str, parse_int=str)  # number text exactly as sent
    if not isinstance(msg, dict) or msg.get("channel") not in CHANNELS or not msg.get("data"):
        return None
    entry = msg["data"][0]
    topic = (msg["channel"], entry["symbol"])
    book = None
    if msg["channel"] == "book":
        book = (topic, msg.get("type") == "snapshot", _levels(entry.get("bids", [])),
                _levels(entry.get("asks", [])), {"ts": entry.get("timestamp")})  # fmt: skip
    return TopicFrame(ts, topic, text, book)


class KrakenV2ReplayVenue(SubscribeReplayVenue):
    name = "kraken"
    settle_s = 0.6  # the client paces its requests (5 per second): book and trade subscribes 0.2 s apart

    def __init__(self, frames: list[TopicFrame], asset_pairs: bytes | None = None,
                 drop: set[tuple[str, int]] | None = None) -> None:  # fmt: skip
        super().__init__({WS_PATH: frames}, drop)
        self.symbols = sorted({str(f.topic[1]) for f in frames})  # type: ignore[index]
        built = {s: ("spot", s.replace("/", "-")) for s in self.symbols}
        self.asset_pairs = asset_pairs or kraken_asset_pairs("", built)
        self.depth: dict[Hashable, int] = {}  # book topic -> depth asked for (snapshot size)

    @classmethod
    def from_recordings(
        cls, paths: list[Path], drop: set[tuple[str, int]] | None = None
    ) -> KrakenV2ReplayVenue:
        """Any recording `cryptoflow verify` reads that holds Kraken v2 frames (a capture directory)."""
        frames: list[TopicFrame] = []
        asset_pairs = None
        for record in merged_records([Path(p) for p in paths]):
            if record.kind == "http" and ASSET_PAIRS_PATH in (record.url or ""):
                asset_pairs = record.data.encode()
            elif record.kind == "recv":
                frame = _frame(record.ts, record.data)
                if frame is not None:
                    frames.append(frame)
        return cls(frames, asset_pairs, drop)

    # ------------------------------------------------------------------ WebSocket protocol
    async def session(self, ws: ServerConnection, stats, speed: float) -> None:
        await ws.send(orjson.dumps({"channel": "status", "type": "update", "data": [
            {"api_version": "v2", "connection_id": 1, "system": "online", "version": "2.0.10"}
        ]}).decode())  # fmt: skip
        await super().session(ws, stats, speed)

    def handle_request(self, conn: Connection, text: str) -> list[str]:
        try:
            msg = orjson.loads(text)
            method, req_id = msg["method"], msg.get("req_id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.sub_stats.refused["malformed"] += 1
            return ['{"error":"malformed request","success":false}']
        self.sub_stats.requests[(conn.path, method)] += 1
        now = rfc3339(time.time_ns() // 1000)
        if method == "ping":
            return [
                orjson.dumps({"method": "pong", "req_id": req_id, "time_in": now, "time_out": now}).decode()
            ]
        params = msg.get("params") or {}
        channel, symbols = params.get("channel"), params.get("symbol") or []
        unknown = [s for s in symbols if s not in self.symbols]
        if method not in ("subscribe", "unsubscribe") or channel not in CHANNELS or unknown:
            self.sub_stats.refused["bad_request"] += 1
            return [orjson.dumps({"method": method, "success": False, "req_id": req_id,
                                  "error": f"bad request ({channel}, {unknown})"}).decode()]  # fmt: skip
        replies = []
        for symbol in symbols:
            topic = (channel, symbol)
            self.sub_stats.topics[(method, topic)] += 1
            if method == "subscribe":
                conn.subscribed.add(topic)
                if channel == "book":
                    self.depth[topic] = int(params.get("depth", 10))
            else:
                conn.subscribed.discard(topic)
            replies.append(orjson.dumps({"method": method, "success": True, "req_id": req_id,
                                         "result": {"channel": channel, "symbol": symbol},
                                         "time_in": now, "time_out": now}).decode())  # fmt: skip
        if method == "subscribe":
            conn.first_subscribe.set()
        return replies

    def book_snapshot(self, conn: Connection, topic: Hashable) -> str | None:
        book = conn.books.get(topic)
        if book is None:
            return None
        depth = self.depth.get(topic, 10)
        bids, asks = book.sorted_bids()[:depth], book.sorted_asks()[:depth]
        view = OrderBook(depth_cap=1 << 30)
        view.load(bids, asks)
        levels = lambda side: "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in side) + "]"  # noqa: E731
        return (
            f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"{topic[1]}",'  # type: ignore[index]
            f'"bids":{levels(bids)},"asks":{levels(asks)},"checksum":{kraken_checksum(view)},'
            f'"timestamp":"{book.ids.get("ts") or rfc3339(time.time_ns() // 1000)}"}}]}}'
        )

    # ------------------------------------------------------------------ REST
    def rest(self, path: str) -> RestReply | None:
        if urlsplit(path).path != ASSET_PAIRS_PATH:
            return None
        return RestReply(200, self.asset_pairs)
