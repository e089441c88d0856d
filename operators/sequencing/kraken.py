"""Kraken book continuity (exchange-protocols.md §6): there are no sequence numbers, so the checksum after
every update is the only gap signal. A book is consistent iff the checksum of the local book (after
applying the update and truncating to the subscribed depth) equals the exchange's value."""

from __future__ import annotations

from operators.sequencing.verdict import Verdict


def checksum_verdict(expected: int | None, actual: int) -> Verdict:
    if expected is None:
        return Verdict.APPLY  # v1 snapshots carry no checksum
    return Verdict.APPLY if expected == actual else Verdict.GAP
