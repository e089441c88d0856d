"""The one error every venue parser raises for a frame it cannot use."""

from __future__ import annotations


class ParseError(ValueError):
    """A frame we cannot use; `reason` is a short metric label (malformed_json, unknown_event, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
