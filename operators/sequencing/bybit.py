"""Bybit v5 `orderbook.{depth}.{symbol}` continuity (exchange-protocols.md §3).

Every snapshot replaces the book (Bybit resends one after internal problems; level 1 is snapshot-only
and may repeat an unchanged `u`). A delta must carry exactly the previous `u` + 1; an older or equal `u`
is a duplicate; anything else, or a delta before any snapshot, is a gap.
"""

from __future__ import annotations

from operators.sequencing.verdict import Verdict


def delta_verdict(last_u: int | None, u: int) -> Verdict:
    if last_u is None:
        return Verdict.GAP
    if u == last_u + 1:
        return Verdict.APPLY
    if u <= last_u:
        return Verdict.STALE
    return Verdict.GAP
