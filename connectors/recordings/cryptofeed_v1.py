"""Reader for cryptofeed v1 text recordings (`*.ws.N.0`, `*.http.0.0`).

Lines: `<url> <-> <ts>` (connect), `<url> <- <ts>: <frame>` (client frame), `<ts>: <frame>` (server
frame), `<url> -> <ts>: <body>` (HTTP response). Files may end with an empty line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from connectors.recordings.records import Record, RecordingFormatError


def _parse_line(line: str) -> Record:
    head, sep, rest = line.partition(" ")
    if not sep:
        raise ValueError("no space separator")
    if head.endswith(":") and head[:-1].replace(".", "", 1).isdigit():
        return Record("recv", float(head[:-1]), rest)
    url = head
    marker, sep, rest = rest.partition(" ")
    if marker == "<->":
        return Record("connect", float(rest), "", url=url)
    ts_text, sep, data = rest.partition(": ")
    if marker == "<-" and sep:
        return Record("send", float(ts_text), data, url=url)
    if marker == "->" and sep:
        return Record("http", float(ts_text), data, url=url)
    raise ValueError(f"unknown marker {marker!r}")


def read_cryptofeed_v1(path: str | Path) -> Iterator[Record]:
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            try:
                yield _parse_line(line)
            except ValueError as exc:
                raise RecordingFormatError(f"{path}:{number}: not a cryptofeed v1 record ({exc})") from None
