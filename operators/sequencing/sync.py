"""Snapshot + diff synchronisation for books built from a REST snapshot and a diff stream.

State machine per book: WAITING (diffs are buffered) -> snapshot arrives -> buffered diffs older than
the snapshot are dropped -> the first diff that continues it is applied together with the snapshot ->
LIVE. A gap sends the book back to WAITING, keeping the diff that revealed the gap (it may straddle
the next snapshot). Pure logic, no I/O: the same class runs in the connector (ids only, to trigger a
re-fetch) and in the operator (with payloads, to emit rows).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

from cryptoflow.model import Kind
from operators.sequencing.verdict import Verdict, VerdictFn

T = TypeVar("T")
S = TypeVar("S")

# A run rule: (book id, diffs, start) -> (index of the first diff from `start` that does not simply
# continue the live book, the book id after the ones that do). Diffs have `kind`, `first_seq`, `seq`,
# `prev_seq`. It must say exactly what repeated `apply_live` says on a book that is not fresh.
RunRule = Callable[[int, Sequence[Any], int], tuple[int, int]]
_RUN_RULES: dict[Any, RunRule] = {}
# A verdict's chain flag: the name of the `DepthGroup` attribute that says (decoder-computed) that every
# diff of a group after its first continues the one before under this verdict's live rule.
_CHAIN_FLAGS: dict[Any, str] = {}


def register_run_rule(verdict: VerdictFn, rule: RunRule) -> None:
    """A verdict's run-level form (one call per run of diffs instead of one `apply_live` per diff)."""
    _RUN_RULES[verdict] = rule


def register_chain_flag(verdict: VerdictFn, flag: str) -> None:
    """Which precomputed chain flag of a column group (`cryptoflow.level_block.DepthGroup`) states that
    the verdict's live rule holds between its consecutive diffs."""
    _CHAIN_FLAGS[verdict] = flag


class Outcome(Enum):
    BUFFERED = "buffered"  # waiting for a snapshot
    STALE = "stale"
    APPLIED = "applied"
    GAP = "gap"  # book invalid until the next snapshot
    SNAPSHOT_TOO_OLD = "snapshot_too_old"  # snapshot ends before the buffered diffs begin: fetch again


@dataclass(slots=True)
class Step(Generic[T, S]):
    """What one input did: its outcome and the items to emit, in order (snapshot first, then diffs)."""

    outcome: Outcome
    snapshot: S | None = None
    diffs: list[T] = field(default_factory=list)
    stale: int = 0
    overflowed: int = 0


class DiffSync(Generic[T, S]):
    def __init__(self, verdict: VerdictFn, max_buffered: int = 10_000) -> None:
        self.verdict = verdict
        self.max_buffered = max_buffered
        self.book_id: int | None = None
        self.fresh = False
        self.pending_snapshot: S | None = None
        self.buffer: deque[tuple[T, int, int, int | None]] = deque()

    @property
    def live(self) -> bool:
        return self.book_id is not None and self.pending_snapshot is None

    @property
    def waiting(self) -> bool:
        return self.book_id is None

    def on_diff(self, item: T, first: int, last: int, prev: int | None = None) -> Step[T, S]:
        if self.book_id is None:
            overflowed = self._buffer(item, first, last, prev)
            return Step(Outcome.BUFFERED, overflowed=overflowed)
        verdict = self.verdict(self.book_id, self.fresh, first, last, prev)
        if verdict is Verdict.STALE:
            return Step(Outcome.STALE, stale=1)
        if verdict is Verdict.GAP:
            too_old = self.pending_snapshot is not None
            self._invalidate()
            self._buffer(item, first, last, prev)
            return Step(Outcome.SNAPSHOT_TOO_OLD if too_old else Outcome.GAP)
        return self._apply(item, last)

    def apply_live(self, first: int, last: int, prev: int | None = None) -> bool:
        """Hot path: apply a diff that continues a LIVE book without allocating a `Step`. False when the
        book is not live or the diff does not simply apply: call `on_diff` for the full outcome."""
        if self.book_id is None or self.pending_snapshot is not None:
            return False
        if self.verdict(self.book_id, self.fresh, first, last, prev) is not Verdict.APPLY:
            return False
        self.book_id, self.fresh = last, False
        return True

    def apply_live_run(self, diffs: Sequence[Any], start: int = 0) -> int:
        """`apply_live` over `diffs[start:]` until one does not simply apply; returns its index (or
        `len(diffs)`). One rule call per run when the verdict registered one (`register_run_rule`)."""
        end = len(diffs)
        rule = _RUN_RULES.get(self.verdict)
        if rule is None or self.fresh or self.book_id is None or self.pending_snapshot is not None:
            i = start
            while i < end:
                d = diffs[i]
                if d.kind is not Kind.DEPTH_DIFF or not self.apply_live(d.first_seq, d.seq, d.prev_seq):
                    return i
                i += 1
                if rule is not None:
                    return self.apply_live_run(diffs, i) if i < end else i
            return i
        stop, book_id = rule(self.book_id, diffs, start)
        if stop > start:
            self.book_id = book_id
        return stop

    def group_applies(self, group: Any) -> bool:
        """Whether a column group of diffs (first ids `first_U`/`first_u`/`first_pu`, last id `seq`, chain
        flag per verdict) continues the LIVE book as a whole: its first diff applies and the decoder found
        every later one continuing its predecessor. Pure: changes nothing."""
        flag = _CHAIN_FLAGS.get(self.verdict)
        if (
            flag is None
            or not getattr(group, flag)
            or self.book_id is None
            or self.pending_snapshot is not None
        ):
            return False
        verdict = self.verdict(self.book_id, self.fresh, group.first_U, group.first_u, group.first_pu)
        return verdict is Verdict.APPLY

    def apply_group(self, group: Any) -> bool:
        """`group_applies`, and if so the book moves to the group's last id (as `apply_live` per diff
        would). False changes nothing: the caller takes the group diff by diff."""
        if not self.group_applies(group):
            return False
        self.book_id, self.fresh = group.seq, False
        return True

    def on_snapshot(self, snapshot: S, last_update_id: int) -> Step[T, S]:
        """Adopt a snapshot and replay the buffer against it."""
        self.book_id, self.fresh = last_update_id, True
        self.pending_snapshot = snapshot
        buffered, self.buffer = self.buffer, deque()
        result: Step[T, S] = Step(Outcome.BUFFERED)
        while buffered:
            item, first, last, prev = buffered.popleft()
            step = self.on_diff(item, first, last, prev)
            result.stale += step.stale
            if step.outcome in (Outcome.GAP, Outcome.SNAPSHOT_TOO_OLD):
                self.buffer.extend(buffered)  # newer diffs stay for the next snapshot
                result.outcome = Outcome.SNAPSHOT_TOO_OLD
                result.snapshot, result.diffs = None, []
                return result
            if step.outcome is Outcome.APPLIED:
                result.outcome = Outcome.APPLIED
                if step.snapshot is not None:
                    result.snapshot = step.snapshot
                result.diffs.extend(step.diffs)
        return result

    def _apply(self, item: T, last: int) -> Step[T, S]:
        snapshot, self.pending_snapshot = self.pending_snapshot, None
        self.book_id, self.fresh = last, False
        return Step(Outcome.APPLIED, snapshot=snapshot, diffs=[item])

    def invalidate(self) -> None:
        """The book was found wrong by other means (checksum, crossed): wait for a new snapshot."""
        self._invalidate()

    def _invalidate(self) -> None:
        self.book_id, self.fresh, self.pending_snapshot = None, False, None

    def _buffer(self, item: T, first: int, last: int, prev: int | None) -> int:
        overflowed = 0
        while len(self.buffer) >= self.max_buffered:
            self.buffer.popleft()
            overflowed += 1
        self.buffer.append((item, first, last, prev))
        return overflowed
