"""Coinbase Advanced Trade `sequence_num` continuity (exchange-protocols.md §5).

The counter is per connection and shared by every channel and product, so it is checked once per frame
by the connection's parser, not per book: a jump means the connection lost messages and every book on it
is invalid; a lower or equal number is a late or repeated message and is dropped.
"""

from __future__ import annotations

from operators.sequencing.verdict import Verdict


def connection_verdict(last_seq: int | None, seq: int) -> Verdict:
    if last_seq is None or seq == last_seq + 1:
        return Verdict.APPLY
    if seq <= last_seq:
        return Verdict.STALE
    return Verdict.GAP
