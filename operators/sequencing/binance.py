"""Binance diff-depth continuity rules (exchange-protocols.md §1 and §2), as pure functions.

Shared by the connector (to decide when to fetch a new REST snapshot) and the book operator (to decide
whether the stream is consistent), so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptoflow.model import Kind
from operators.sequencing.sync import register_chain_flag, register_run_rule
from operators.sequencing.verdict import Verdict

_DIFF = Kind.DEPTH_DIFF


def spot_verdict(book_id: int, fresh: bool, first: int, last: int, prev: int | None = None) -> Verdict:
    """Spot: drop `u <= book`; `U > book + 1` is a gap; otherwise apply (the first one straddles)."""
    if last <= book_id:
        return Verdict.STALE
    if first > book_id + 1:
        return Verdict.GAP
    return Verdict.APPLY


def usdm_verdict(book_id: int, fresh: bool, first: int, last: int, prev: int | None) -> Verdict:
    """USD-M: the first diff after a snapshot must satisfy `U <= lastUpdateId <= u`; after that each
    diff's `pu` must equal the previous `u`. Ids jump by large steps, so never test `U == u + 1`."""
    if fresh:
        if last < book_id:
            return Verdict.STALE
        return Verdict.APPLY if first <= book_id else Verdict.GAP
    if prev == book_id:
        return Verdict.APPLY
    if last <= book_id:
        return Verdict.STALE
    return Verdict.GAP


def spot_live_run(book_id: int, diffs: Sequence[Any], start: int) -> tuple[int, int]:
    """`spot_verdict` == APPLY over a run, inline: `book < u` and `U <= book + 1`, book := u."""
    i, end = start, len(diffs)
    while i < end:
        d = diffs[i]
        if d.kind is not _DIFF or d.seq <= book_id or d.first_seq > book_id + 1:
            break
        book_id = d.seq
        i += 1
    return i, book_id


def usdm_live_run(book_id: int, diffs: Sequence[Any], start: int) -> tuple[int, int]:
    """`usdm_verdict` == APPLY on a book that is not fresh, over a run: `pu == book`, book := u."""
    i, end = start, len(diffs)
    while i < end:
        d = diffs[i]
        if d.kind is not _DIFF or d.prev_seq != book_id:
            break
        book_id = d.seq
        i += 1
    return i, book_id


register_run_rule(spot_verdict, spot_live_run)
register_run_rule(usdm_verdict, usdm_live_run)
register_chain_flag(spot_verdict, "spot_chain")
register_chain_flag(usdm_verdict, "usdm_chain")
