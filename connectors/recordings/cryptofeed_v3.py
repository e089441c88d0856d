"""Reader for cryptofeed v3 JSON-lines recordings (`cryptofeed_v3_*.jsonl`).

Lines: `{"t":"header",...}` (skipped), `{"t":"http","conn","ts","url","data"}`,
`{"t":"connect","conn","ts","addr"}`, `{"t":"send","conn","ts","addr","data"}`,
`{"t":"recv","conn","ts","data"}`. `data` is the raw frame as a JSON string; it is handed on as that
text (parsers decode it), so nothing about the exchange's number formatting is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from connectors.recordings.records import Record, RecordingFormatError

_KINDS = {"http", "connect", "send", "recv"}


def read_cryptofeed_v3(path: str | Path) -> Iterator[Record]:
    path = Path(path)
    addr_of_conn: dict[str, str] = {}
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                kind = obj["t"]
                if kind == "header":
                    continue
                if kind not in _KINDS:
                    raise ValueError(f"unknown record type {kind!r}")
                conn = obj.get("conn")
                url = obj.get("url") or obj.get("addr")
                if kind == "connect" and conn is not None and url:
                    addr_of_conn[conn] = url
                if url is None and conn is not None:
                    url = addr_of_conn.get(conn)
                yield Record(kind, float(obj["ts"]), obj.get("data") or "", url=url, conn=conn)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise RecordingFormatError(f"{path}:{number}: not a cryptofeed v3 record ({exc})") from None
