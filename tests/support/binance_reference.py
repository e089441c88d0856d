"""The reference every Binance batch decoder is checked against: `parse_ws_frame`, frame by frame."""

from __future__ import annotations

from connectors.binance.parsing import parse_ws_frame
from connectors.parse_errors import ParseError


def parse_frame_by_frame(frames, instruments, ingest_us: int, shard: int = 5):
    """(events, the frame of each event, (frame, error reason) per bad frame)."""
    events, kept, errors = [], [], []
    for raw in frames:
        try:
            ev = parse_ws_frame(raw, instruments, shard, ingest_us)
        except ParseError as exc:
            errors.append((raw, exc.reason))
            continue
        if ev is not None:
            events.append(ev)
            kept.append(raw)
    return events, kept, errors
