"""CryptoFlow's own capture format: what a connector saw, in arrival order, replayable by `verify`.

JSON lines, UTF-8. Line 1 is a header, then one record per connect, sent frame, received WebSocket
frame or REST response, in the order the connector got them (REST snapshots sit exactly where the
connector injected them into the frame stream, which is what the sequencers must replay):

    {"t": "header", "format": "cryptoflow-capture", "version": 1, "exchange": "binance", "started_us": 1}
    {"t": "connect", "conn": "ws-0", "ts_us": 1, "url": "wss://stream.binance.com:9443/stream?streams=..."}
    {"t": "send", "conn": "ws-0", "ts_us": 2, "data": "{\"method\":\"SUBSCRIBE\",...}"}
    {"t": "recv", "conn": "ws-0", "ts_us": 3, "data": "<the frame text exactly as received>"}
    {"t": "http", "conn": "rest", "ts_us": 4, "url": "https://api.binance.com/api/v3/depth?symbol=X&limit=1000",
     "status": 200, "data": "<the body exactly as received>"}

`ts_us` is the local receive clock in epoch microseconds (never exchange time). `conn` names the
connection: frames of one connection share sequencing state (Coinbase `sequence_num`), and a `recv`
belongs to the URL of its connection's `connect`. Binary frames are stored decoded as UTF-8 text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from connectors.recordings.records import Record, RecordingFormatError

FORMAT = "cryptoflow-capture"
VERSION = 1


def is_capture(first_line: bytes | str) -> bool:
    try:
        obj = orjson.loads(first_line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and obj.get("t") == "header" and obj.get("format") == FORMAT


def read_capture(path: str | Path) -> Iterator[Record]:
    path = Path(path)
    urls: dict[str, str] = {}
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                kind = obj["t"]
                if number == 1:
                    if kind != "header" or obj.get("format") != FORMAT:
                        raise ValueError("first line is not a cryptoflow-capture header")
                    if obj.get("version") != VERSION:
                        raise ValueError(f"unsupported version {obj.get('version')!r}")
                    continue
                if kind not in ("connect", "send", "recv", "http"):
                    raise ValueError(f"unknown record type {kind!r}")
                conn = obj["conn"]
                url = obj.get("url")
                if kind == "connect":
                    urls[conn] = url
                elif url is None:
                    url = urls.get(conn)
                yield Record(kind, obj["ts_us"] / 1e6, obj.get("data", ""), url=url, conn=conn)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise RecordingFormatError(
                    f"{path}:{number}: not a cryptoflow capture record ({exc})"
                ) from None


class CaptureWriter:
    """Append records to an open text stream in the capture format (used by tests and connectors)."""

    def __init__(self, out: IO[str], exchange: str, started_us: int) -> None:
        self.out = out
        self._write({"t": "header", "format": FORMAT, "version": VERSION, "exchange": exchange,
                     "started_us": started_us})  # fmt: skip

    def _write(self, obj: dict) -> None:
        self.out.write(orjson.dumps(obj).decode() + "\n")

    def connect(self, conn: str, ts_us: int, url: str) -> None:
        self._write({"t": "connect", "conn": conn, "ts_us": ts_us, "url": url})

    def send(self, conn: str, ts_us: int, data: str) -> None:
        self._write({"t": "send", "conn": conn, "ts_us": ts_us, "data": data})

    def recv(self, conn: str, ts_us: int, data: str) -> None:
        self._write({"t": "recv", "conn": conn, "ts_us": ts_us, "data": data})

    def http(self, conn: str, ts_us: int, url: str, data: str, status: int = 200) -> None:
        self._write({"t": "http", "conn": conn, "ts_us": ts_us, "url": url, "status": status, "data": data})

    def records(self, records: Iterable[Record]) -> None:
        """Re-write records read from another format (the connect URL is kept per connection)."""
        for r in records:
            ts_us = round(r.ts * 1e6)
            conn = r.conn or "ws-0"
            if r.kind == "connect":
                self.connect(conn, ts_us, r.url or "")
            elif r.kind == "http":
                self.http(r.conn or "rest", ts_us, r.url or "", r.data)
            elif r.kind == "send":
                self.send(conn, ts_us, r.data)
            else:
                self.recv(conn, ts_us, r.data)
