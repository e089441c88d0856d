"""OKX v5 `books` continuity (exchange-protocols.md §4).

A snapshot (`prevSeqId == -1`) starts the book. An update must have `prevSeqId` equal to the last applied
`seqId` (keep-alives have `seqId == prevSeqId` and still chain; after maintenance `seqId` may be smaller
than `prevSeqId`, which is fine). Re-delivery of the update just applied is a duplicate. Recordings from
before 2023 carry no ids at all: then only the checksum can tell (`None` verdict = "cannot say").
"""

from __future__ import annotations

from operators.sequencing.verdict import Verdict


def update_verdict(last_seq: int | None, prev_seq: int | None, seq: int | None) -> Verdict | None:
    if seq is None or prev_seq is None:
        return None  # pre-2023 frames: no ids, rely on the checksum
    if last_seq is None:
        return Verdict.GAP
    if prev_seq == last_seq:
        return Verdict.APPLY
    if seq == last_seq:
        return Verdict.STALE
    return Verdict.GAP


def checksum_applies(checksum: int | None) -> bool:
    """OKX fixed the field to 0 when it deprecated it: only a non-zero value is a real checksum."""
    return checksum is not None and checksum != 0
