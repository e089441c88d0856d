"""Binance spot, as the simulator serves it: a recording's WebSocket frames (by stream name), its REST
depth snapshots and the instrument list, behind the real URL shapes:

  WS   /stream?streams=<s1>/<s2>     combined streams, frames wrapped {"stream", "data"}
  WS   /stream, /ws                  then {"method":"SUBSCRIBE","params":[...],"id":n} on the open socket
                                     (answered {"result":null,"id":n}; UNSUBSCRIBE, LIST_SUBSCRIPTIONS too)
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
from connectors.recordings.records import Record
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
    rest_prefix = "/api/v3"

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

    default_recording = (paths.BINANCE_SPOT_WS, paths.BINANCE_SPOT_HTTP, paths.BINANCE_SPOT_INSTRUMENTS)

    @classmethod
    def from_cryptofeed_v1(
        cls,
        ws_path: Path | None = None,
        http_path: Path | None = None,
        instruments_path: Path | None = None,
    ) -> BinanceSpotVenue:
        """A venue replaying a cryptofeed v1 WS recording + its REST file (defaults: this venue's fixtures)."""
        ws_path = ws_path or cls.default_recording[0]
        http_path = http_path or cls.default_recording[1]
        instruments_path = instruments_path or cls.default_recording[2]
        records = [*read_cryptofeed_v1(ws_path), *read_cryptofeed_v1(http_path)]
        return cls.from_records(records, Path(instruments_path))

    @classmethod
    def from_recording(cls, *files: Path, instruments_path: Path | None = None) -> BinanceSpotVenue:
        """Any recording the readers know (a `cryptoflow capture` directory, the JSON-lines capture format,
        cryptofeed v1): WS frames, REST depth snapshots and, if captured, the exchangeInfo body."""
        from connectors.recordings.capture import is_capture, read_capture
        from connectors.recordings.journal_capture import is_journal_capture, read_journal_capture

        records = []
        for path in files:
            if is_journal_capture(path):  # `cryptoflow capture` output
                records.extend(read_journal_capture(path))
                continue
            with Path(path).open("rb") as handle:
                first = handle.readline()
            records.extend(read_capture(path) if is_capture(first) else read_cryptofeed_v1(path))
        return cls.from_records(records, instruments_path or cls.default_recording[2])

    @classmethod
    def from_records(cls, records: list[Record], instruments_path: Path) -> BinanceSpotVenue:
        """Combined-stream frames (`{"stream","data"}`) in receive order; a frame a second connection
        received byte-identically (a rotation's overlap) is kept once. REST depth bodies by symbol;
        a recorded exchangeInfo body wins over the reference file `instruments_path`."""
        frames: list[RecordedFrame] = []
        first_conn: dict[tuple[str, str], str | None] = {}
        snapshots: dict[str, bytes] = {}
        instruments = None
        for record in records:  # file order is arrival order
            if record.kind == "recv":
                try:
                    stream = orjson.loads(record.data).get("stream")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                if not stream:
                    continue  # acks, raw-stream frames without a stream name
                key = (stream, record.data)
                if key in first_conn and first_conn[key] != record.conn:
                    continue  # the same update seen on an overlapping connection
                first_conn[key] = record.conn
                frames.append(RecordedFrame(record.ts, stream, record.data))
            elif record.kind == "http" and "/depth" in (record.url or ""):
                symbol = parse_qs(urlsplit(record.url).query)["symbol"][0]
                snapshots.setdefault(symbol, record.data.encode())
            elif record.kind == "http" and "/exchangeInfo" in (record.url or ""):
                instruments = orjson.loads(record.data)["symbols"]
        if instruments is None:
            instruments = json.loads(Path(instruments_path).read_text())["symbols"]
        return cls(frames, snapshots, instruments)

    # ------------------------------------------------------------------ WebSocket
    # Endpoint path prefix -> which recorded streams it serves (None = all). USD-M overrides this.
    endpoints: dict[str, object] = {"": None}

    def _endpoint(self, path: str) -> tuple[str, set[str]] | None:
        """(endpoint prefix, streams named in the URL) or None if `path` is not a stream URL."""
        parts = urlsplit(path)
        for prefix in self.endpoints:
            if parts.path == f"{prefix}/stream":
                return prefix, set(parse_qs(parts.query).get("streams", [""])[0].split("/")) - {""}
            if parts.path == f"{prefix}/ws" or parts.path.startswith(f"{prefix}/ws/"):
                return prefix, set(parts.path[len(f"{prefix}/ws/") :].split("/")) - {""}
        return None

    def serves(self, prefix: str, stream: str) -> bool:
        return True

    def frames_for(self, path: str) -> list[RecordedFrame] | None:
        """The recorded frames a connection to `path` receives, or None if the path is not a stream URL."""
        endpoint = self._endpoint(path)
        if endpoint is None:
            return None
        prefix, wanted = endpoint
        return [f for f in self.frames if f.stream in wanted and self.serves(prefix, f.stream)]

    def subscribable(self, path: str) -> list[RecordedFrame] | None:
        """Every frame a connection to `path` could receive once it subscribes (the endpoint's frames);
        None when the URL itself names the streams (that connection replays `frames_for` at once)."""
        endpoint = self._endpoint(path)
        if endpoint is None or endpoint[1]:
            return None
        prefix = endpoint[0]
        return [f for f in self.frames if self.serves(prefix, f.stream)]

    def control(self, text: str, subscribed: set[str]) -> str | None:
        """A client message on an open socket: SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, as Binance."""
        try:
            msg = json.loads(text)
            method, req_id = msg["method"], msg.get("id")
        except (ValueError, KeyError, TypeError):
            return json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}})
        params = msg.get("params") or []
        if method == "SUBSCRIBE":
            subscribed.update(params)
        elif method == "UNSUBSCRIBE":
            subscribed.difference_update(params)
        elif method == "LIST_SUBSCRIPTIONS":
            return json.dumps({"result": sorted(subscribed), "id": req_id})
        else:
            return json.dumps({"error": {"code": 1, "msg": f"Unknown method {method}"}, "id": req_id})
        return json.dumps({"result": None, "id": req_id})

    # ------------------------------------------------------------------ REST
    def rest(self, path: str) -> RestReply | None:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        if parts.path == f"{self.rest_prefix}/ping":
            return RestReply(200, b"{}")
        if parts.path == f"{self.rest_prefix}/depth":
            return self._depth(query)
        if parts.path == f"{self.rest_prefix}/exchangeInfo":
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
