"""Sequencing rules of exchange-protocols.md §3-§6 that the recordings cannot exercise (OKX seqId
chaining arrived after the 2022 capture), as tables of cases, plus the OKX/Kraken checksum inputs."""

from __future__ import annotations

import pytest

from cryptoflow.model import Kind, RawEvent
from operators.book.tracker import OKX, BookTracker
from operators.sequencing import bybit, coinbase, okx
from operators.sequencing.verdict import Verdict as V


@pytest.mark.parametrize(("last", "prev", "seq", "verdict"), [
    (100, 100, 105, V.APPLY),   # normal chain
    (105, 105, 105, V.APPLY),   # keep-alive: seqId == prevSeqId, still chains
    (105, 105, 90, V.APPLY),    # after maintenance seqId may be smaller than prevSeqId
    (105, 100, 105, V.STALE),   # the update just applied, delivered again
    (105, 110, 120, V.GAP),     # prevSeqId is not our last seqId
    (None, 100, 105, V.GAP),    # update before any snapshot
    (105, None, None, None),    # 2022 frames: no ids, the checksum decides
])  # fmt: skip
def test_okx_update_verdict(last, prev, seq, verdict):
    assert okx.update_verdict(last, prev, seq) is verdict


def test_okx_zero_checksum_is_not_a_checksum():
    assert not okx.checksum_applies(0) and not okx.checksum_applies(None) and okx.checksum_applies(-5)


def _okx(kind: Kind, seq: int, prev: int, checksum: int | None = 0) -> RawEvent:
    return RawEvent("okx", "spot", "BTC-USDT", "BTC-USDT", kind, 1000 + seq, 0, 0, seq,
                    ([["100.0", "1"]], [["101.0", "1"]]), seq=seq, prev_seq=prev, checksum=checksum)  # fmt: skip


def test_okx_tracker_follows_seq_chain_and_ignores_deprecated_checksum():
    t = BookTracker(OKX)
    t.on_event(_okx(Kind.DEPTH_SNAPSHOT, 10, -1))
    assert t.on_event(_okx(Kind.DEPTH_DIFF, 11, 10)).gaps == []
    assert t.on_event(_okx(Kind.DEPTH_DIFF, 11, 10)).gaps == []  # duplicate
    assert t.counters.stale == 1 and t.counters.checksum.match == t.counters.checksum.mismatch == 0
    (gap,) = t.on_event(_okx(Kind.DEPTH_DIFF, 15, 13)).gaps
    assert (gap.seq_from, gap.seq_to, gap.reason) == (11, 15, "sequence") and not t.valid


@pytest.mark.parametrize(("last", "u", "verdict"), [(5, 6, V.APPLY), (5, 5, V.STALE), (5, 3, V.STALE),
                                                    (5, 7, V.GAP), (None, 1, V.GAP)])  # fmt: skip
def test_bybit_delta_verdict(last, u, verdict):
    assert bybit.delta_verdict(last, u) is verdict


@pytest.mark.parametrize(("last", "seq", "verdict"), [(None, 0, V.APPLY), (4, 5, V.APPLY), (4, 4, V.STALE),
                                                      (4, 2, V.STALE), (4, 6, V.GAP)])  # fmt: skip
def test_coinbase_connection_verdict(last, seq, verdict):
    assert coinbase.connection_verdict(last, seq) is verdict
