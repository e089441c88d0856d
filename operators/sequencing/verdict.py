"""What a sequencer can say about one diff against the book it would apply to."""

from __future__ import annotations

from enum import Enum
from typing import Protocol


class Verdict(Enum):
    STALE = "stale"  # already contained in the book (older than the snapshot / a duplicate): drop it
    APPLY = "apply"  # continues the book: apply it
    GAP = "gap"  # something between the book and this diff is missing: the book is invalid


class VerdictFn(Protocol):
    def __call__(self, book_id: int, fresh: bool, first: int, last: int, prev: int | None) -> Verdict:
        """`book_id`: id the book is at; `fresh`: no diff applied since the snapshot."""
        ...
