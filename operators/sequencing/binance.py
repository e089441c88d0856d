"""Binance diff-depth continuity rules (exchange-protocols.md §1 and §2), as pure functions.

Shared by the connector (to decide when to fetch a new REST snapshot) and the book operator (to decide
whether the stream is consistent), so the two can never disagree.
"""

from __future__ import annotations

from operators.sequencing.verdict import Verdict


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
