"""The sink against a real SqlCatalog table: ancestry walk, max(table, state), watermark dedupe on
triggering offsets, and reconciliation of commits whose outcome is unknown."""

from __future__ import annotations

from collections import Counter

import pytest
from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

from connectors.iceberg.sink import (
    BackgroundCommitError,
    IcebergSinkPartition,
    SinkState,
    committed_state,
    find_commit,
    merge_states,
)
from cryptoflow import metrics
from tests.support.sinks import WRITER, ids, load, part, trade


def test_merge_takes_the_furthest_state():
    a = SinkState(3, {0: 10, 1: 5})
    b = SinkState(2, {0: 7, 2: 9})
    assert merge_states(a, b) == SinkState(3, {0: 10, 1: 5, 2: 9})


def test_commits_carry_writer_seq_watermark_and_the_ancestry_walk_finds_them(catalog):
    p = part(catalog)
    p.write_batch([trade(0, 1), trade(1, 4)])
    assert p.snapshot() == SinkState(1, {0: 1, 1: 4})
    p.write_batch([trade(0, 2)])
    p.snapshot()
    p.snapshot()  # nothing buffered: no empty commit
    p.drain()  # the commits run after snapshot() returns
    table = load(catalog)
    assert len(table.snapshots()) == 2
    summary = table.current_snapshot().summary.additional_properties
    assert summary["cryptoflow.writer-id"] == WRITER and summary["cryptoflow.seq"] == "2"
    assert committed_state(table, WRITER) == SinkState(2, {0: 2, 1: 4})
    assert committed_state(table, "someone-else") == SinkState()
    assert find_commit(table, WRITER, 1) and find_commit(table, WRITER, 2)
    assert not find_commit(table, WRITER, 3)


def test_crash_between_commit_and_snapshot_replays_without_duplicates(catalog):
    first = part(catalog)
    first.write_batch([trade(0, o) for o in range(0, 5)])
    saved = first.snapshot()  # Bytewax persisted this one
    first.write_batch([trade(0, o) for o in range(5, 9)])
    first.snapshot()  # committed to Iceberg, then the process died before Bytewax stored it
    first.drain()
    # resume from the older state; the replay re-sends offsets 5.. with different batch boundaries
    resumed = part(catalog, resume=saved)
    assert resumed.state == SinkState(2, {0: 8})
    resumed.write_batch([trade(0, o) for o in range(5, 7)])
    resumed.write_batch([trade(0, o) for o in range(7, 12)])
    assert resumed.snapshot() == SinkState(3, {0: 11})
    resumed.drain()
    got = ids(catalog)
    assert set(got.values()) == {1} and len(got) == 12


def test_rows_emitted_late_with_a_low_lineage_offset_are_kept(catalog):
    """A buffered diff (own offset 3) emitted by a later snapshot (offset 25) after rows of another
    book up to offset 24 were committed: it is new data, the triggering offset says so."""
    p = part(catalog)
    p.write_batch([trade(0, 24)])
    p.snapshot()
    late = trade(0, 3, trade_id=777)
    late.offset = 25  # the triggering input's position
    p.write_batch([late])
    p.snapshot()
    p.drain()
    assert ids(catalog)["777"] == 1


class FlakyAppend:
    """Wraps the commit of the table's append transactions: the n-th commits fail, before or after
    really committing."""

    def __init__(self, catalog, plan: dict[int, tuple[str, Exception]]):
        self.catalog, self.plan, self.calls = catalog, plan, 0

    def install(self, partition: IcebergSinkPartition) -> None:
        table = partition.table
        real = table.transaction

        def transaction():
            tx = real()
            commit = tx.commit_transaction

            def flaky_commit():
                self.calls += 1
                when, exc = self.plan.get(self.calls, ("never", None))
                if when == "before":
                    raise exc
                commit()
                if when == "after":
                    raise exc

            tx.commit_transaction = flaky_commit
            return tx

        table.transaction = transaction


@pytest.mark.parametrize(
    ("when", "exc", "reason"),
    [
        (
            "after",
            CommitStateUnknownException("500 from the catalog after the commit landed"),
            "unknown_state",
        ),
        ("before", CommitStateUnknownException("500 before the catalog committed"), "unknown_state"),
        ("before", CommitFailedException("409 conflict, pyiceberg retries exhausted"), "conflict"),
        ("before", OSError("S3 PutObject: 503 SlowDown"), "io_error"),
        ("before", TimeoutError("S3 upload timed out"), "timeout"),
        ("after", TimeoutError("catalog response lost"), "timeout"),
    ],
)
def test_failed_commits_are_reconciled_and_retried_without_loss_or_duplicate(catalog, when, exc, reason):
    retries = metrics.COMMIT_RETRIES.labels("ticks", reason)
    before = retries._value.get()
    p = part(catalog)
    FlakyAppend(catalog, {1: (when, exc)}).install(p)
    p.write_batch([trade(0, o) for o in range(5)])
    assert p.snapshot().seq == 1
    p.drain()
    # the reload after the failure gave the partition a fresh table object: make it fail once more
    FlakyAppend(catalog, {1: (when, exc)}).install(p)
    p.write_batch([trade(0, o) for o in range(5, 8)])
    assert p.snapshot().seq == 2
    p.drain()
    got = ids(catalog)
    assert len(got) == 8 and set(got.values()) == {1}
    assert retries._value.get() - before == 2
    table = load(catalog)
    assert [s.summary.additional_properties["cryptoflow.seq"] for s in table.snapshots()] == ["1", "2"]


def test_a_commit_that_keeps_failing_raises_after_the_configured_attempts(catalog):
    p = part(catalog)
    plan = {i: ("before", OSError("S3 down")) for i in range(1, 50)}
    FlakyAppend(catalog, plan).install(p)
    p.reload = lambda: p.table  # keep the flaky table object
    p.write_batch([trade(0, 1)])
    p.snapshot()  # staged; the commit fails in the background
    with pytest.raises(BackgroundCommitError) as failed:
        p.drain()
    assert isinstance(failed.value.__cause__, OSError)
    assert ids(catalog) == Counter()
