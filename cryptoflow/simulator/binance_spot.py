"""Binance spot, as the simulator serves it: a recording's WebSocket frames (by stream name), its REST
depth snapshots and the instrument list, behind the real URL shapes:

  WS   /stream?streams=<s1>/<s2>     combined streams, frames wrapped {"stream", "data"}
  REST /api/v3/depth?symbol=&limit=  the recorded snapshot (truncated to limit)
  REST /api/v3/exchangeInfo[?symbols=[...]|symbol=]
  REST /api/v3/ping

In continuous mode (`with_live_books`) the venue keeps a true book per symbol: the recorded snapshot
with every diff the server has published since applied to it, so a client that lost frames (injected
disconnect) gets a REST snapshot consistent with the replay position, exactly as from a live exchange.
Looping replays shift update ids, trade ids and times per pass so the stream stays monotonic.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from connectors.recordings.cryptofeed_v1 import read_cryptofeed_v1
from cryptoflow import paths


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    ts: float
    stream: str
    text: str


@dataclass(frozen=True)
class RestReply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


_WEIGHT = (("X-MBX-USED-WEIGHT-1M", "50"),)


def _error(status: int, code: int, msg: str) -> RestReply:
    return RestReply(status, orjson.dumps({"code": code, "msg": msg}))


class TrueBook:
    """One symbol's book as the venue knows it: levels keyed by exact price, the last applied update id."""

    def __init__(self, snapshot: dict, id_shift: int, loop_pass: int) -> None:
        self.loop_pass = loop_pass
        self.last_id = snapshot["lastUpdateId"] + id_shift
        self.sides: dict[str, dict[Decimal, tuple[str, str]]] = {"bids": {}, "asks": {}}
        for side in ("bids", "asks"):
            for price, qty in snapshot[side]:
                self.sides[side][Decimal(price)] = (price, qty)
        self.applied = 0

    def apply(self, diff: dict) -> None:
        if diff["u"] <= self.last_id:
            return  # older than the book: the exchange had applied it before the snapshot
        for side, key in (("bids", "b"), ("asks", "a")):
            levels = self.sides[side]
            for price, qty in diff[key]:
                if Decimal(qty) == 0:
                    levels.pop(Decimal(price), None)
                else:
                    levels[Decimal(price)] = (price, qty)
        self.last_id = diff["u"]
        self.applied += 1

    def snapshot(self, limit: int) -> dict:
        bids = [list(self.sides["bids"][p]) for p in sorted(self.sides["bids"], reverse=True)[:limit]]
        asks = [list(self.sides["asks"][p]) for p in sorted(self.sides["asks"])[:limit]]
        return {"lastUpdateId": self.last_id, "bids": bids, "asks": asks}


class BinanceSpotVenue:
    name = "binance"

    def __init__(self, frames: list[RecordedFrame], snapshots: dict[str, bytes], instruments: list[dict]):
        self.frames = frames
        self.snapshots = snapshots
        self.instruments = {entry["symbol"]: entry for entry in instruments}
        self.live_books: dict[str, TrueBook] | None = None
        # per loop pass, ids move past every recorded id and times past the recording's span
        max_id = max([*self._ids(), 1])
        self.id_stride = 10 ** len(str(max_id))
        span_ms = int((frames[-1].ts - frames[0].ts) * 1000) + 1000 if frames else 0
        self.time_stride_ms = span_ms

    def _ids(self) -> list[int]:
        ids = [orjson.loads(b)["lastUpdateId"] for b in self.snapshots.values()]
        for frame in self.frames:
            data = orjson.loads(frame.text).get("data", {})
            ids += [data[k] for k in ("u", "a", "l", "t") if isinstance(data.get(k), int)]
        return ids

    # ------------------------------------------------------------------ continuous mode
    def with_live_books(self) -> BinanceSpotVenue:
        """A copy that serves REST depth from true books (continuous mode) instead of the recording."""
        venue = copy.copy(self)
        venue.live_books = {}
        return venue

    def shift(self, frame: RecordedFrame, loop_pass: int) -> RecordedFrame:
        """The frame as published in loop pass `loop_pass` (ids and times moved on, pass 0 unchanged)."""
        if loop_pass == 0:
            return frame
        msg = orjson.loads(frame.text)
        data = msg.get("data", {})
        ids, ms = loop_pass * self.id_stride, loop_pass * self.time_stride_ms
        for key in ("U", "u", "pu", "a", "f", "l", "t", "b_id", "lastUpdateId"):
            if isinstance(data.get(key), int):
                data[key] += ids
        for key in ("E", "T"):
            if isinstance(data.get(key), int):
                data[key] += ms
        return RecordedFrame(frame.ts + ms / 1000, frame.stream, orjson.dumps(msg).decode())

    def observe(self, frame: RecordedFrame, loop_pass: int) -> None:
        """The server published (or a client missed) `frame`: advance the symbol's true book."""
        if self.live_books is None or "@depth" not in frame.stream:
            return
        data = orjson.loads(frame.text).get("data", {})
        symbol = data.get("s")
        if data.get("e") != "depthUpdate" or symbol not in self.snapshots:
            return
        book = self.live_books.get(symbol)
        if book is None or book.loop_pass < loop_pass:
            # a new pass starts from the recorded snapshot again, moved to this pass's ids
            book = TrueBook(orjson.loads(self.snapshots[symbol]), loop_pass * self.id_stride, loop_pass)
            self.live_books[symbol] = book
        book.apply(data)

    @classmethod
    def from_cryptofeed_v1(
        cls,
        ws_path: Path = paths.BINANCE_SPOT_WS,
        http_path: Path = paths.BINANCE_SPOT_HTTP,
        instruments_path: Path = paths.BINANCE_SPOT_INSTRUMENTS,
    ) -> BinanceSpotVenue:
        frames = []
        for record in read_cryptofeed_v1(ws_path):
            if record.kind != "recv":
                continue
            stream = orjson.loads(record.data).get("stream")
            if stream:
                frames.append(RecordedFrame(record.ts, stream, record.data))
        snapshots = {}
        for record in read_cryptofeed_v1(http_path):
            if record.kind == "http" and "/depth" in (record.url or ""):
                symbol = parse_qs(urlsplit(record.url).query)["symbol"][0]
                snapshots[symbol] = record.data.encode()
        instruments = json.loads(Path(instruments_path).read_text())["symbols"]
        return cls(frames, snapshots, instruments)

    # ------------------------------------------------------------------ WebSocket
    def frames_for(self, path: str) -> list[RecordedFrame] | None:
        """The recorded frames a connection to `path` receives, or None if the path is not a stream URL."""
        parts = urlsplit(path)
        if parts.path == "/stream":
            wanted = set(parse_qs(parts.query).get("streams", [""])[0].split("/")) - {""}
        elif parts.path.startswith("/ws/"):
            wanted = set(parts.path[len("/ws/") :].split("/"))
        else:
            return None
        return [f for f in self.frames if f.stream in wanted]

    # ------------------------------------------------------------------ REST
    def rest(self, path: str) -> RestReply | None:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        if parts.path == "/api/v3/ping":
            return RestReply(200, b"{}")
        if parts.path == "/api/v3/depth":
            return self._depth(query)
        if parts.path == "/api/v3/exchangeInfo":
            return self._exchange_info(query)
        return None

    def _depth(self, query: dict[str, list[str]]) -> RestReply:
        symbol = query.get("symbol", [""])[0]
        body = self.snapshots.get(symbol)
        if body is None:
            return _error(400, -1121, "Invalid symbol.")
        try:
            limit = int(query.get("limit", ["100"])[0])
        except ValueError:
            return _error(400, -1100, "Illegal characters found in parameter 'limit'.")
        if self.live_books is not None and symbol in self.live_books:
            return RestReply(200, orjson.dumps(self.live_books[symbol].snapshot(limit)), _WEIGHT)
        snapshot = orjson.loads(body)
        if limit < len(snapshot["bids"]) or limit < len(snapshot["asks"]):
            snapshot["bids"], snapshot["asks"] = snapshot["bids"][:limit], snapshot["asks"][:limit]
            body = orjson.dumps(snapshot)
        return RestReply(200, body, _WEIGHT)

    def _exchange_info(self, query: dict[str, list[str]]) -> RestReply:
        if "symbols" in query:
            try:
                wanted = json.loads(query["symbols"][0])
            except ValueError:
                return _error(400, -1100, "Illegal characters found in parameter 'symbols'.")
        elif "symbol" in query:
            wanted = [query["symbol"][0]]
        else:
            wanted = list(self.instruments)
        unknown = [s for s in wanted if s not in self.instruments]
        if unknown:
            return _error(400, -1121, "Invalid symbol.")
        symbols = [self.instruments[s] for s in wanted]
        return RestReply(200, orjson.dumps({"timezone": "UTC", "rateLimits": [], "symbols": symbols}))
