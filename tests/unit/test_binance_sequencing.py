import pytest

from operators.sequencing.binance import spot_verdict, usdm_verdict
from operators.sequencing.sync import DiffSync, Outcome
from operators.sequencing.verdict import Verdict


@pytest.mark.parametrize(
    ("book", "first", "last", "expected"),
    [
        (100, 90, 100, Verdict.STALE),  # u <= book
        (100, 95, 105, Verdict.APPLY),  # straddles the snapshot
        (100, 101, 105, Verdict.APPLY),  # continues
        (100, 102, 105, Verdict.GAP),  # U > book + 1
    ],
)
def test_spot_verdict(book, first, last, expected):
    assert spot_verdict(book, False, first, last) is expected


def test_usdm_verdict_uses_pu_chain_not_plus_one():
    assert usdm_verdict(100, True, 90, 120, 80) is Verdict.APPLY  # U <= lastUpdateId <= u
    assert usdm_verdict(100, True, 50, 99, 40) is Verdict.STALE
    assert usdm_verdict(100, True, 101, 120, 100) is Verdict.GAP  # no '+1' on futures
    assert usdm_verdict(120, False, 500, 900, 120) is Verdict.APPLY  # ids jump, pu chains
    assert usdm_verdict(120, False, 500, 900, 119) is Verdict.GAP
    assert usdm_verdict(900, False, 500, 900, 120) is Verdict.STALE


def spot_sync() -> DiffSync:
    return DiffSync(spot_verdict, max_buffered=100)


def test_buffered_diffs_straddling_snapshot_are_applied_and_stale_dropped():
    sync = spot_sync()
    for first, last in [(90, 95), (96, 99), (100, 104), (105, 110)]:
        assert sync.on_diff((first, last), first, last).outcome is Outcome.BUFFERED
    step = sync.on_snapshot("snap", 101)
    assert step.outcome is Outcome.APPLIED
    assert step.snapshot == "snap"
    assert step.diffs == [(100, 104), (105, 110)]
    assert step.stale == 2
    assert sync.live and sync.book_id == 110


def test_snapshot_before_any_newer_diff_waits_for_the_straddling_one():
    sync = spot_sync()
    step = sync.on_snapshot("snap", 101)
    assert step.outcome is Outcome.BUFFERED and step.snapshot is None and not sync.live
    assert sync.on_diff("old", 95, 101).outcome is Outcome.STALE
    step = sync.on_diff("new", 99, 103)
    assert step.outcome is Outcome.APPLIED and step.snapshot == "snap" and step.diffs == ["new"]


def test_snapshot_too_old_keeps_newer_diffs_for_the_next_snapshot():
    sync = spot_sync()
    sync.on_diff("a", 200, 210)
    sync.on_diff("b", 211, 220)
    step = sync.on_snapshot("old-snap", 150)
    assert step.outcome is Outcome.SNAPSHOT_TOO_OLD and step.snapshot is None and step.diffs == []
    assert sync.waiting and [item for item, *_ in sync.buffer] == ["a", "b"]
    step = sync.on_snapshot("good-snap", 215)
    assert step.outcome is Outcome.APPLIED and step.snapshot == "good-snap" and step.diffs == ["b"]


def test_gap_invalidates_until_next_snapshot_and_keeps_the_revealing_diff():
    sync = spot_sync()
    sync.on_snapshot("s1", 100)
    sync.on_diff("d1", 101, 105)
    step = sync.on_diff("d3", 110, 115)  # 106..109 missing
    assert step.outcome is Outcome.GAP and step.diffs == [] and sync.waiting
    assert sync.on_diff("d4", 116, 118).outcome is Outcome.BUFFERED
    step = sync.on_snapshot("s2", 112)
    assert step.snapshot == "s2" and step.diffs == ["d3", "d4"]


def test_buffer_is_bounded_and_counts_what_it_dropped():
    sync = DiffSync(spot_verdict, max_buffered=3)
    overflowed = sum(sync.on_diff(i, i, i).overflowed for i in range(1, 6))
    assert overflowed == 2 and len(sync.buffer) == 3


def _random_diffs(rng, market: str, n: int = 400):
    """Id triples with contiguous stretches, gaps, duplicates, out-of-order and stale diffs, missing
    `pu`, and an occasional snapshot event in the middle of the run."""
    from cryptoflow.model import Kind, RawEvent

    out, last = [], 100
    for i in range(n):
        r = rng.random()
        if r < 0.03:
            out.append(RawEvent("binance", market, "A-B", "AB", Kind.DEPTH_SNAPSHOT, None, 0, 0, i, ([], []),
                                seq=last - rng.randint(0, 2)))  # fmt: skip
            continue
        first = last + 1 + (rng.randint(1, 4) if r < 0.08 else 0) - (rng.randint(2, 8) if r > 0.95 else 0)
        new = first + rng.randint(0, 3)
        prev = last if r < 0.9 else (None if r < 0.92 else last - 1)
        out.append(RawEvent("binance", market, "A-B", "AB", Kind.DEPTH_DIFF, i, 0, 0, i, ([], []),
                            first_seq=first, seq=new, prev_seq=prev if market == "perp" else None))  # fmt: skip
        last = max(last, new)
    return out


@pytest.mark.parametrize("market", ["spot", "perp"])
@pytest.mark.parametrize("seed", range(6))
def test_run_level_apply_equals_apply_live_diff_by_diff(market, seed):
    """`apply_live_run` (one rule call per run) stops where repeated `apply_live` first says no and
    leaves the book where it does, from every starting state (fresh, live, waiting)."""
    import random

    from operators.sequencing.binance import usdm_verdict

    rng = random.Random(seed)
    verdict = spot_verdict if market == "spot" else usdm_verdict
    diffs = _random_diffs(rng, market)
    run, ref = DiffSync(verdict), DiffSync(verdict)
    i = 0
    checked = 0
    while i < len(diffs):
        stop = run.apply_live_run(diffs, i)
        j = i
        while (
            j < len(diffs)
            and diffs[j].kind.name == "DEPTH_DIFF"
            and ref.apply_live(diffs[j].first_seq, diffs[j].seq, diffs[j].prev_seq)
        ):
            j += 1
        assert stop == j and (run.book_id, run.fresh) == (ref.book_id, ref.fresh)
        checked += stop - i
        if stop == len(diffs):
            break
        ev = diffs[stop]  # the reference outcome for the one that does not simply apply
        for s in (run, ref):
            if ev.kind.name == "DEPTH_SNAPSHOT":
                s.on_snapshot(None, ev.seq)
            else:
                s.on_diff(None, ev.first_seq, ev.seq, ev.prev_seq)
        assert (run.book_id, run.fresh, len(run.buffer)) == (ref.book_id, ref.fresh, len(ref.buffer))
        i = stop + 1
    assert checked > 20  # the run path really applied stretches of diffs
