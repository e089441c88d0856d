"""Binance spot, as the simulator serves it: a recording's WebSocket frames (by stream name), its REST
depth snapshots and the instrument list, behind the real URL shapes:

  WS   /stream?streams=<s1>/<s2>     combined streams, frames wrapped {"stream", "data"}
  REST /api/v3/depth?symbol=&limit=  the recorded snapshot (truncated to limit)
  REST /api/v3/exchangeInfo[?symbols=[...]|symbol=]
  REST /api/v3/ping
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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


def _error(status: int, code: int, msg: str) -> RestReply:
    return RestReply(status, orjson.dumps({"code": code, "msg": msg}))


class BinanceSpotVenue:
    name = "binance"

    def __init__(self, frames: list[RecordedFrame], snapshots: dict[str, bytes], instruments: list[dict]):
        self.frames = frames
        self.snapshots = snapshots
        self.instruments = {entry["symbol"]: entry for entry in instruments}

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
        snapshot = orjson.loads(body)
        if limit < len(snapshot["bids"]) or limit < len(snapshot["asks"]):
            snapshot["bids"], snapshot["asks"] = snapshot["bids"][:limit], snapshot["asks"][:limit]
            body = orjson.dumps(snapshot)
        return RestReply(200, body, (("X-MBX-USED-WEIGHT-1M", "50"),))

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
