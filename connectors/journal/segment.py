"""On-disk record format of the per-shard journal.

A journal directory holds append-only segment files named after the offset of their first record
(`00000000000000000042.seg`), so a reader can find the segment of any offset by name alone. A record
is a fixed header, then the meta string (connection/stream id or symbol) and the payload bytes exactly
as they arrived. The CRC covers everything after the CRC field, so a torn tail (the process died in
the middle of a write) is detected and cut off when the journal is opened again.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

SUFFIX = ".seg"
# length of what follows the CRC, crc32, offset, ingest_us, kind, meta length
HEADER = struct.Struct("<IIQqBH")
_AFTER_CRC = struct.Struct("<QqBH")


class RecordKind(IntEnum):
    WS_FRAME = 1  # one WebSocket message; meta = connection id
    REST_SNAPSHOT = 2  # a REST order-book snapshot body; meta = exchange symbol
    INSTRUMENTS = 3  # the exchange's instrument list body (needed to decode what follows)
    END = 4  # a client finished (replay end); meta = run id of the writing process
    EVENTS = 5  # events a client made itself (connection gaps), JSON; meta = the client family


@dataclass(frozen=True, slots=True)
class JournalRecord:
    offset: int
    ingest_us: int
    kind: RecordKind
    meta: str
    payload: bytes


def encode(offset: int, ingest_us: int, kind: RecordKind, meta: str, payload: bytes) -> bytes:
    meta_b = meta.encode()
    body = _AFTER_CRC.pack(offset, ingest_us, int(kind), len(meta_b)) + meta_b + payload
    crc = zlib.crc32(body)
    return struct.pack("<II", len(body), crc) + body


class TornRecord(Exception):
    """Not a whole, valid record at this position (end of data, or a write cut short)."""


def decode_at(buf: bytes | memoryview, pos: int) -> tuple[JournalRecord, int]:
    """Decode the record starting at `pos`; returns it and the position after it."""
    if len(buf) - pos < 8:
        raise TornRecord("short header")
    length, crc = struct.unpack_from("<II", buf, pos)
    start, end = pos + 8, pos + 8 + length
    if length < _AFTER_CRC.size or end > len(buf):
        raise TornRecord("short body")
    body = bytes(buf[start:end])
    if zlib.crc32(body) != crc:
        raise TornRecord("crc mismatch")
    offset, ingest_us, kind, meta_len = _AFTER_CRC.unpack_from(body, 0)
    meta_end = _AFTER_CRC.size + meta_len
    meta = body[_AFTER_CRC.size : meta_end].decode()
    return JournalRecord(offset, ingest_us, RecordKind(kind), meta, body[meta_end:]), end


def segment_name(first_offset: int) -> str:
    return f"{first_offset:020d}{SUFFIX}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(first offset, path) of every segment, oldest first."""
    out = []
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            out.append((int(path.stem), path))
        except ValueError:
            continue
    return sorted(out)


def scan_segment(path: Path) -> tuple[list[JournalRecord], int]:
    """Every whole record of a segment and the byte length they cover (anything after is torn)."""
    data = path.read_bytes()
    records, pos = [], 0
    while pos < len(data):
        try:
            record, pos = decode_at(data, pos)
        except TornRecord:
            break
        records.append(record)
    return records, pos
