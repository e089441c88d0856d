"""Reader for `cryptoflow capture` output (journal segment directories) as recording `Record`s, so a
live capture replays through `cryptoflow verify` and the simulator like any other recording.

A capture directory is `<out>/<source>/<partition>/*.seg` (or any level of it). The venue is told by the
`<source>` directory (`binance_spot`, `binance_usdm`, `bybit`, `okx`, `coinbase_spot`, `kraken_spot`).
Journal records carry no URLs, so they are given the venue's real ones:

- Binance: frames become `recv` records of one connection per partition, REST snapshot bodies `http`
  records on the depth endpoint of their symbol (the journal's `meta`), instrument bodies `http` records
  on exchangeInfo.
- Subscribe venues: every journaled connection (the frame's `meta`, `<key>|<run>.<client>.<conn>`) is a
  connection of its own on the venue's WebSocket URL (Bybit: the category `<key>` picks the path); the
  journaled instrument map becomes an `http` record on the venue's instrument endpoint with the map
  written back as that endpoint's body (`instrument_bodies.py`; OKX's simulator builds its own list).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from connectors.journal.segment import RecordKind, list_segments, scan_segment
from connectors.recordings.instrument_bodies import ENCODERS
from connectors.recordings.records import Record, RecordingFormatError

# Binance source name -> (WebSocket URL, depth URL prefix, exchangeInfo URL)
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
# subscribe venue source name -> WebSocket URL (`{key}`: the journal key, Bybit's category)
SUBSCRIBE_URLS = {
    "bybit": "wss://stream.bybit.com/v5/public/{key}",
    "okx": "wss://ws.okx.com:8443/ws/v5/public",
    "coinbase_spot": "wss://advanced-trade-ws.coinbase.com",
    "kraken_spot": "wss://ws.kraken.com/v2",
}
SOURCES = (*VENUE_URLS, *SUBSCRIBE_URLS)


def partitions_of(path: Path) -> list[Path]:
    """Every directory at or below `path` that holds journal segments, in name order."""
    path = Path(path)
    found = [p for p in [path, *sorted(path.rglob("*"))] if p.is_dir() and list_segments(p)]
    return found


def is_journal_capture(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and bool(partitions_of(path))


def source_of(partition: Path) -> str:
    """The journal source (`<out>/<source>/<partition>`) a partition directory belongs to."""
    for part in reversed(Path(partition).resolve().parts):
        if part in SOURCES:
            return part
    raise RecordingFormatError(
        f"{partition}: cannot tell which venue this journal belongs to "
        f"(expected a parent directory named one of {sorted(SOURCES)})"
    )


def sources_of(path: str | Path) -> dict[str, list[Path]]:
    """source name -> its partitions, for every venue in a capture directory."""
    out: dict[str, list[Path]] = {}
    for partition in partitions_of(Path(path)):
        out.setdefault(source_of(partition), []).append(partition)
    return out


def _read_binance(partition: Path, source: str) -> Iterator[Record]:
    ws_url, depth_url, info_url = VENUE_URLS[source]
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


def _read_subscribe(partition: Path, source: str, maps: dict[str, dict]) -> Iterator[Record]:
    """`maps` (journal key -> instrument map) gathers every partition's maps: each instrument record is
    re-emitted as the union so far, so the last body of a key lists every client's instruments."""
    ws_template = SUBSCRIBE_URLS[source]
    encoder = ENCODERS.get(source)
    opened: set[str] = set()
    for _, segment in list_segments(partition):
        records, _ = scan_segment(segment)
        for rec in records:
            ts = rec.ingest_us / 1e6
            if rec.kind is RecordKind.WS_FRAME:
                key = rec.meta.split("|", 1)[0]
                url = ws_template.format(key=key)
                conn = f"{partition}#{rec.meta}"
                if conn not in opened:
                    opened.add(conn)
                    yield Record("connect", ts, "", url=url, conn=conn)
                yield Record("recv", ts, rec.payload.decode(), url=url, conn=conn)
            elif rec.kind is RecordKind.INSTRUMENTS and encoder is not None:
                url_of, body_of = encoder
                try:
                    found = {s: tuple(v) for s, v in orjson.loads(rec.payload).items()}
                except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
                    raise RecordingFormatError(
                        f"{partition}@{rec.offset}: bad instrument map ({exc})"
                    ) from None
                merged = maps.setdefault(rec.meta, {})
                merged.update(found)
                body = body_of(rec.meta, merged).decode()
                yield Record("http", ts, body, url=url_of(rec.meta), conn=f"{partition}#rest")


def read_partition(partition: Path, maps: dict[str, dict] | None = None) -> Iterator[Record]:
    source = source_of(partition)
    if source in VENUE_URLS:
        yield from _read_binance(partition, source)
    else:
        yield from _read_subscribe(partition, source, {} if maps is None else maps)


def read_journal_capture(path: str | Path) -> Iterator[Record]:
    """All partitions of a capture, one after the other (each journaled connection is its own)."""
    partitions = partitions_of(Path(path))
    if not partitions:
        raise RecordingFormatError(f"{path}: no journal segments (*.seg) found")
    maps: dict[str, dict[str, dict]] = {}  # source -> journal key -> instrument map
    for partition in partitions:
        yield from read_partition(partition, maps.setdefault(source_of(partition), {}))
