"""Reader for `cryptoflow capture` output (journal segment directories) as recording `Record`s, so a
live capture replays through `cryptoflow verify` and the simulator like any other recording.

A capture directory is `<out>/<source>/<partition>/*.seg` (or any level of it). Journal records carry
no URLs, so they are given the venue's real ones from the source name (`binance_spot`, `binance_usdm`):
frames become `recv` records of one connection per partition, REST snapshot bodies `http` records on the
depth endpoint of their symbol (the journal's `meta`), instrument bodies `http` records on exchangeInfo.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from connectors.journal.segment import RecordKind, list_segments, scan_segment
from connectors.recordings.records import Record, RecordingFormatError

# source name -> (WebSocket URL, depth URL prefix, exchangeInfo URL)
VENUE_URLS = {
    "binance_spot": (
        "wss://stream.binance.com:9443/stream",
        "https://api.binance.com/api/v3/depth?symbol=",
        "https://api.binance.com/api/v3/exchangeInfo",
    ),
    "binance_usdm": (
        "wss://fstream.binance.com/public/stream",
        "https://fapi.binance.com/fapi/v1/depth?symbol=",
        "https://fapi.binance.com/fapi/v1/exchangeInfo",
    ),
}


def partitions_of(path: Path) -> list[Path]:
    """Every directory at or below `path` that holds journal segments, in name order."""
    path = Path(path)
    found = [p for p in [path, *sorted(path.rglob("*"))] if p.is_dir() and list_segments(p)]
    return found


def is_journal_capture(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and bool(partitions_of(path))


def _source_of(partition: Path) -> str:
    for part in reversed(partition.parts):
        if part in VENUE_URLS:
            return part
    raise RecordingFormatError(
        f"{partition}: cannot tell which venue this journal belongs to "
        f"(expected a parent directory named one of {sorted(VENUE_URLS)})"
    )


def read_partition(partition: Path) -> Iterator[Record]:
    ws_url, depth_url, info_url = VENUE_URLS[_source_of(partition)]
    conn = str(partition)
    started = False
    for _, segment in list_segments(partition):
        records, _ = scan_segment(segment)
        for rec in records:
            ts = rec.ingest_us / 1e6
            if not started:
                yield Record("connect", ts, "", url=ws_url, conn=conn)
                started = True
            if rec.kind is RecordKind.WS_FRAME:
                yield Record("recv", ts, rec.payload.decode(), url=ws_url, conn=conn)
            elif rec.kind is RecordKind.REST_SNAPSHOT:
                yield Record("http", ts, rec.payload.decode(), url=depth_url + rec.meta, conn=f"{conn}#rest")
            elif rec.kind is RecordKind.INSTRUMENTS:
                yield Record("http", ts, rec.payload.decode(), url=info_url, conn=f"{conn}#rest")


def read_journal_capture(path: str | Path) -> Iterator[Record]:
    """All partitions of a capture, one after the other (each is its own connection)."""
    partitions = partitions_of(Path(path))
    if not partitions:
        raise RecordingFormatError(f"{path}: no journal segments (*.seg) found")
    for partition in partitions:
        yield from read_partition(partition)
