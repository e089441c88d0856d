"""The sink's two-phase commit against a real SqlCatalog table: the worker thread only hands rows
over, `snapshot()` returns state that carries the staged data files, the Iceberg commit runs after it
in the background, and each new failure window (crash with staged files, crash after the background
commit, a failed background commit, close) keeps every row exactly once."""

from __future__ import annotations

import pickle
import threading
from collections import Counter
from dataclasses import replace

import pyarrow.parquet as pq
import pytest

from connectors.iceberg.sink import (
    BackgroundCommitError,
    IcebergSinkPartition,
    SinkState,
    StagedFilesMissing,
    committed_state,
)
from cryptoflow import metrics
from tests.support.sinks import FAST, TICKS, WRITER, ids, load, part, trade


def expected(offsets) -> Counter:
    """The trade ids the input rows carry, once each (trade(0, o) has id o)."""
    return Counter(str(o) for o in offsets)


def saved(state: SinkState) -> SinkState:
    """What Bytewax hands back on resume: the state went through pickle into the recovery store."""
    return pickle.loads(pickle.dumps(state))


def never_commits(p: IcebergSinkPartition) -> None:
    """The process dies before any background commit of `p` runs."""
    p._commit_in_background = lambda staged: None


def test_conversion_and_commit_run_off_the_worker_thread(catalog):
    worker = threading.current_thread()
    threads = {"convert": set(), "write": set(), "commit": set()}
    p = part(catalog)

    def to_arrow(rows):
        threads["convert"].add(threading.current_thread())
        return TICKS.to_arrow(rows)

    p.table_def = replace(TICKS, to_arrow=to_arrow)
    real_write, real_append = p._write_files, p._append

    def write_files(arrow, seq):
        threads["write"].add(threading.current_thread())
        return real_write(arrow, seq)

    def append(*args):
        threads["commit"].add(threading.current_thread())
        return real_append(*args)

    p._write_files, p._append = write_files, append
    for start in range(0, 5000, 500):
        p.write_batch([trade(0, o) for o in range(start, start + 500)])
    p.snapshot()
    p.drain()
    assert all(threads.values()) and not any(worker in used for used in threads.values()), threads
    assert threads["commit"] != threads["convert"]  # the commit has its own thread
    assert ids(catalog) == expected(range(5000))


def test_snapshot_returns_the_staged_files_before_the_commit_lands(catalog):
    p = part(catalog)
    release = threading.Event()
    real = p._commit_in_background
    p._commit_in_background = lambda staged: (release.wait(10), real(staged))
    p.write_batch([trade(0, o) for o in range(10)])
    state = p.snapshot()
    assert state == SinkState(1, {0: 9})
    assert [s.seq for s in state.staged] == [1] and state.staged[0].rows == 10
    assert ids(catalog) == Counter()  # not committed yet: snapshot() did not wait for the commit
    assert all(load(catalog).io.new_input(f.file_path).exists() for f in state.staged[0].files)
    # what Bytewax stores: small, and the DataFiles survive pickling unchanged
    assert len(pickle.dumps(state)) < 4096
    assert list(saved(state).staged[0].files) == list(state.staged[0].files)
    release.set()
    p.drain()
    assert ids(catalog) == expected(range(10))
    assert p.snapshot().staged == ()  # landed: later states no longer carry it


def test_crash_after_staging_before_the_commit_resumes_by_committing_once(catalog):
    """Killed after snapshot() returned (Bytewax stored the state with the staged files) and before
    the background commits ran: two staged epochs, none in the table."""
    first = part(catalog)
    never_commits(first)
    first.write_batch([trade(0, o) for o in range(0, 6)] + [trade(1, 3)])
    first.snapshot()
    first.write_batch([trade(0, o) for o in range(6, 9)])
    state = saved(first.snapshot())
    first.drain()
    assert [s.seq for s in state.staged] == [1, 2]
    assert ids(catalog) == Counter() and committed_state(load(catalog), WRITER) == SinkState()
    # resume: the staged epochs are committed first, in seq order, once
    resumed = part(catalog, resume=state)
    table = load(catalog)
    assert [s.summary.additional_properties["cryptoflow.seq"] for s in table.snapshots()] == ["1", "2"]
    assert committed_state(table, WRITER) == SinkState(2, {0: 8, 1: 3})
    # the source resumes after the saved epoch; a replayed overlap is dropped
    resumed.write_batch([trade(0, o) for o in range(7, 12)])
    assert resumed.snapshot() == SinkState(3, {0: 11, 1: 3})
    resumed.drain()
    # a second restart from the same state (the crash repeated) commits nothing again
    again = part(catalog, resume=state)
    assert again.state == SinkState(3, {0: 11, 1: 3})
    assert ids(catalog) == expected(range(12)) + Counter({"100003": 1})
    assert len(load(catalog).snapshots()) == 3


def test_crash_after_the_background_commit_before_the_next_snapshot(catalog):
    """The state carries staged seq 1, its commit then landed, the process died: resuming from that
    state must find seq 1 in the table and not append it again."""
    first = part(catalog)
    release = threading.Event()
    real = first._commit_in_background
    first._commit_in_background = lambda staged: (release.wait(10), real(staged))
    first.write_batch([trade(0, o) for o in range(5)])
    state = saved(first.snapshot())
    assert [s.seq for s in state.staged] == [1]
    release.set()
    first.drain()  # landed
    first.write_batch([trade(0, o) for o in range(5, 8)])  # in flight when the process died
    resumed = part(catalog, resume=state)
    assert len(load(catalog).snapshots()) == 1
    resumed.write_batch([trade(0, o) for o in range(5, 8)])  # the replay of the lost epoch
    resumed.snapshot()
    resumed.drain()
    assert ids(catalog) == expected(range(8))
    assert [s.summary.additional_properties["cryptoflow.seq"] for s in load(catalog).snapshots()] == [
        "1",
        "2",
    ]


def test_a_failed_background_commit_stops_the_flow_and_the_resume_commits_it(catalog):
    failures = metrics.SINK_FAILURES.labels("ticks", "commit")
    before = failures._value.get()
    p = part(catalog)
    p.reload = lambda: p.table
    gate = threading.Event()

    def failing(files, props, table_props):
        gate.wait(10)
        raise OSError("S3 down")

    p._append = failing
    p.write_batch([trade(0, o) for o in range(4)])
    state1 = saved(p.snapshot())  # seq 1 staged, its commit will fail after FAST's 5 attempts
    p.write_batch([trade(0, o) for o in range(4, 6)])
    state2 = saved(p.snapshot())  # seq 2 staged behind it
    gate.set()
    with pytest.raises(BackgroundCommitError) as failed:
        p.drain()
    assert isinstance(failed.value.__cause__, OSError)
    assert failures._value.get() - before == 1  # seq 2 was not attempted after seq 1 failed
    with pytest.raises(BackgroundCommitError):
        p.write_batch([trade(0, 6)])
    with pytest.raises(BackgroundCommitError):
        p.snapshot()
    assert ids(catalog) == Counter()  # nothing landed, in particular not seq 2 without seq 1
    assert [s.seq for s in state1.staged] == [1] and [s.seq for s in state2.staged] == [1, 2]
    # Bytewax restarts from the last stored state: both staged epochs land, once
    resumed = part(catalog, resume=state2)
    assert resumed.state == SinkState(2, {0: 5})
    assert ids(catalog) == expected(range(6))


def test_close_commits_everything_synchronously(catalog):
    p = part(catalog)
    release = threading.Event()
    real = p._commit_in_background
    p._commit_in_background = lambda staged: (release.wait(0.2), real(staged))
    p.write_batch([trade(0, o) for o in range(3)])
    p.snapshot()  # its commit is still waiting
    p.write_batch([trade(0, o) for o in range(3, 7)])  # never snapshotted: close() seals it
    p.close()
    assert ids(catalog) == expected(range(7))
    assert committed_state(load(catalog), WRITER) == SinkState(2, {0: 6})
    assert not p.stager.thread.is_alive() and not p.committer.thread.is_alive()


def test_staged_files_that_vanished_are_a_clear_counted_error(catalog):
    missing = metrics.SINK_FAILURES.labels("ticks", "staged_files_missing")
    before = missing._value.get()
    first = part(catalog)
    never_commits(first)
    first.write_batch([trade(0, o) for o in range(5)])
    state = saved(first.snapshot())
    for data_file in state.staged[0].files:
        load(catalog).io.delete(data_file.file_path)
    with pytest.raises(StagedFilesMissing, match="staged seq 1"):
        part(catalog, resume=state)
    assert missing._value.get() - before == 1
    assert ids(catalog) == Counter()


def test_a_state_saved_by_the_previous_version_resumes(catalog):
    """Recovery stores written before the two-phase commit hold SinkState without `staged`."""
    old = SinkState(3, {0: 7})
    del old.__dict__["staged"]
    resumed = IcebergSinkPartition(
        TICKS, load(catalog), WRITER, saved(old), FAST, reload=lambda: load(catalog)
    )
    assert resumed.state == SinkState(3, {0: 7})
    resumed.write_batch([trade(0, o) for o in range(6, 10)])
    assert resumed.snapshot() == SinkState(4, {0: 9})
    resumed.close()
    assert ids(catalog) == expected(range(8, 10))


def test_files_written_during_the_epoch_commit_as_one_append(catalog):
    """`sink.stage_rows`: the stager writes files as soon as that many rows are converted; the seal
    writes the rest, and the epoch is still one snapshot with every row once, each file sorted."""
    cfg = FAST.model_copy(update={"stage_rows": 7})
    p = IcebergSinkPartition(TICKS, load(catalog), WRITER, None, cfg, reload=lambda: load(catalog))
    written = []
    real_write = p._write_files
    p._write_files = lambda arrow, seq: written.append(arrow.num_rows) or real_write(arrow, seq)
    offsets = list(range(40))
    random_order = offsets[::-1]  # rows arrive out of sort order: each file must still be sorted
    for start in range(0, 40, 4):
        p.write_batch([trade(0, o) for o in random_order[start : start + 4]])
        p._hand_over()  # as CONVERT_EVERY rows would
    state = p.snapshot()
    assert sum(written) == 40 and len(written) >= 4 and all(n < 40 for n in written)  # several writes
    assert state == SinkState(1, {0: 39}) and state.staged[0].rows == 40
    assert len(state.staged[0].files) == len(written)  # ticks is unpartitioned: one file per write
    p.drain()
    table = load(catalog)
    assert len(table.snapshots()) == 1
    assert ids(catalog) == expected(offsets)
    for task in table.scan().plan_files():
        with table.io.new_input(task.file.file_path).open() as f:
            rows = pq.read_table(f, columns=["symbol", "exchange_ts", "trade_id"]).to_pylist()
        got = [(r["symbol"], r["exchange_ts"], r["trade_id"]) for r in rows]
        assert got == sorted(got)
