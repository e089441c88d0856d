"""The common shape every recording reader yields: one record per connect, sent frame, received frame
or HTTP response, in file order (which is arrival order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RecordKind = Literal["connect", "send", "recv", "http"]


@dataclass(frozen=True, slots=True)
class Record:
    kind: RecordKind
    ts: float  # recorder's receive clock, unix seconds (may be skewed against exchange time)
    data: str  # the raw frame or response body, exactly as recorded
    url: str | None = None
    conn: str | None = None  # connection id where the format has one


class RecordingFormatError(ValueError):
    """A recording line that does not follow its format; carries file and line for the user."""
