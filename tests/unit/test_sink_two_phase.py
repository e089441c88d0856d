"""The sink's two-phase commit against a real SqlCatalog table: the worker thread only hands rows
over, `snapshot()` returns state that carries the staged data files and the rows not yet in files
(the tail, as Arrow IPC), the tail's files and the Iceberg commit come after it in the background, and
each failure window (crash with staged files or a staged tail, crash after the background commit, a
failed background commit or tail write, close) keeps every row exactly once."""

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
from connectors.iceberg.staging import StagedCommit, from_ipc
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


def small_chunks(catalog, stage_rows: int = 3) -> IcebergSinkPartition:
    """A partition whose writer thread writes files every `stage_rows` converted rows."""
    cfg = FAST.model_copy(update={"stage_rows": stage_rows})
    return IcebergSinkPartition(TICKS, load(catalog), WRITER, None, cfg, reload=lambda: load(catalog))


def feed_and_write(p: IcebergSinkPartition, offsets) -> None:
    """Hand `offsets` over as one piece and wait until the writer wrote the full chunks' files."""
    p.write_batch([trade(0, o) for o in offsets])
    p._hand_over()  # as CONVERT_EVERY rows would
    p.stager.submit(lambda: None).result()
    p.writer.submit(lambda: None).result()


def block_writer(p: IcebergSinkPartition) -> threading.Event:
    """Hold the writer thread (a slow Parquet write) until the returned event is set."""
    gate = threading.Event()
    p.writer.submit(gate.wait, 30)
    return gate


def tail_ids(commit: StagedCommit) -> Counter:
    """The trade ids in a staged commit's IPC tail, decoded independently of the sink."""
    tail = from_ipc(commit.tail)
    return Counter() if tail is None else Counter(tail.column("trade_id").to_pylist())


def file_ids(catalog, commit: StagedCommit) -> Counter:
    """The trade ids in a staged commit's data files, read straight from storage."""
    got: Counter = Counter()
    for data_file in commit.files:
        with load(catalog).io.new_input(data_file.file_path).open() as f:
            got += Counter(pq.read_table(f, columns=["trade_id"]).column("trade_id").to_pylist())
    return got


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


def test_snapshot_returns_the_staged_rows_before_the_commit_lands(catalog):
    """An epoch smaller than `stage_rows` has no files at the seal: its rows are the state's tail."""
    p = part(catalog)
    release = threading.Event()
    real = p._commit_in_background
    p._commit_in_background = lambda staged: (release.wait(10), real(staged))
    p.write_batch([trade(0, o) for o in range(10)])
    state = p.snapshot()
    assert state == SinkState(1, {0: 9})
    assert [s.seq for s in state.staged] == [1] and state.staged[0].rows == 10
    assert ids(catalog) == Counter()  # not committed yet: snapshot() did not wait for the commit
    assert state.staged[0].files == () and tail_ids(state.staged[0]) == expected(range(10))
    # what Bytewax stores: small, and the tail survives pickling unchanged
    assert len(pickle.dumps(state)) < 8192
    assert tail_ids(saved(state).staged[0]) == expected(range(10))
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
    first = small_chunks(catalog)
    never_commits(first)
    feed_and_write(first, range(3))  # one chunk with files, written before the seal
    first.write_batch([trade(0, o) for o in range(3, 5)])
    state = saved(first.snapshot())
    assert file_ids(catalog, state.staged[0]) == expected(range(3))  # the state names those files
    assert tail_ids(state.staged[0]) == expected(range(3, 5))  # the rest is its tail
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
    """`sink.stage_rows`: the writer thread writes files as soon as that many rows are converted; the
    seal hands it the rest, and the epoch is still one snapshot with every row once, each file sorted."""
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
    assert state == SinkState(1, {0: 39}) and state.staged[0].rows == 40
    # every row once: in the files the state names or in its tail (the seal waits for no write)
    assert file_ids(catalog, state.staged[0]) + tail_ids(state.staged[0]) == expected(offsets)
    p.drain()
    assert sum(written) == 40 and len(written) >= 4 and all(n < 40 for n in written)  # several writes
    table = load(catalog)
    assert len(table.snapshots()) == 1
    summary = table.current_snapshot().summary.additional_properties
    assert int(summary["added-data-files"]) == len(written)  # ticks is unpartitioned: one file per write
    assert ids(catalog) == expected(offsets)
    for task in table.scan().plan_files():
        with table.io.new_input(task.file.file_path).open() as f:
            rows = pq.read_table(f, columns=["symbol", "exchange_ts", "trade_id"]).to_pylist()
        got = [(r["symbol"], r["exchange_ts"], r["trade_id"]) for r in rows]
        assert got == sorted(got)


def test_the_seal_does_not_wait_for_parquet(catalog):
    """The writer thread is busy (a slow Parquet write) when the epoch ends: snapshot() still returns,
    with the written files and the rest of the rows as the tail; the commit waits for the tail's files."""
    p = small_chunks(catalog, stage_rows=4)
    feed_and_write(p, range(4))  # chunk 1: files written during the epoch
    gate = block_writer(p)
    p.write_batch([trade(0, o) for o in range(4, 8)])
    p._hand_over()  # chunk 2: handed to the (blocked) writer
    p.write_batch([trade(0, o) for o in range(8, 10)])  # the seal's own last rows
    done = threading.Event()
    result = {}
    sealer = threading.Thread(target=lambda: (result.update(state=p.snapshot()), done.set()))
    sealer.start()
    assert done.wait(20), "snapshot() waited for the blocked Parquet writer"
    staged = result["state"].staged[0]
    assert staged.rows == 10 and file_ids(catalog, staged) == expected(range(4))
    assert tail_ids(staged) == expected(range(4, 10))
    assert ids(catalog) == Counter()  # the commit waits for the tail's files
    gate.set()
    p.drain()
    assert ids(catalog) == expected(range(10))
    assert len(load(catalog).snapshots()) == 1  # still one append for the epoch


def test_crash_after_the_seal_before_the_tail_files_resumes_from_the_tail(catalog):
    """Killed after snapshot() returned a state with files and a tail, before the tail's files were
    written (the writer was still busy) and before the commit: the resume writes the tail's files
    from the state and commits the epoch once; a second resume from the same state commits nothing."""
    tail_bytes = metrics.SINK_SEAL_TAIL_BYTES.labels("ticks")
    bytes_before = tail_bytes._sum.get()
    first = small_chunks(catalog, stage_rows=5)
    never_commits(first)
    feed_and_write(first, range(5))
    block_writer(first)  # never released: the process "dies" with the tail unwritten
    first.write_batch([trade(0, o) for o in range(5, 12)] + [trade(1, 2)])
    state = saved(first.snapshot())
    staged = state.staged[0]
    assert file_ids(catalog, staged) == expected(range(5))
    assert tail_ids(staged) == expected(range(5, 12)) + Counter({"100002": 1})
    assert tail_bytes._sum.get() - bytes_before == staged.tail_bytes() > 0  # counted per seal
    assert ids(catalog) == Counter()
    resumed = part(catalog, resume=state)
    assert resumed.state == SinkState(1, {0: 11, 1: 2})
    assert ids(catalog) == expected(range(12)) + Counter({"100002": 1})
    table = load(catalog)
    assert [s.summary.additional_properties["cryptoflow.seq"] for s in table.snapshots()] == ["1"]
    resumed.write_batch([trade(0, o) for o in range(10, 14)])  # replayed overlap dropped
    resumed.close()
    again = part(catalog, resume=state)
    assert again.state == SinkState(2, {0: 13, 1: 2})
    assert ids(catalog) == expected(range(14)) + Counter({"100002": 1})
    assert len(load(catalog).snapshots()) == 2


def test_a_failed_tail_write_stops_the_flow_and_the_resume_writes_it(catalog):
    """The tail's Parquet write fails for good after the seal: counted, the flow stops with
    BackgroundCommitError, nothing lands; the stored state's tail restores every row."""
    failures = metrics.SINK_FAILURES.labels("ticks", "tail_files")
    before = failures._value.get()
    p = part(catalog)

    def failing(arrow, seq):
        raise OSError("S3 down")

    p._write_files = failing
    p.write_batch([trade(0, o) for o in range(6)])
    state = saved(p.snapshot())
    with pytest.raises(BackgroundCommitError) as failed:
        p.drain()
    assert isinstance(failed.value.__cause__, OSError)
    assert failures._value.get() - before == 1
    assert ids(catalog) == Counter()
    resumed = part(catalog, resume=state)
    assert resumed.state == SinkState(1, {0: 5})
    assert ids(catalog) == expected(range(6))


def test_a_staged_commit_pickled_before_the_tail_existed_resumes(catalog):
    """Recovery stores written before the tail field hold StagedCommits without `tail`: they load
    with an empty tail and their files are committed as before."""
    first = small_chunks(catalog, stage_rows=4)
    never_commits(first)
    feed_and_write(first, range(4))
    state = first.snapshot()
    staged = state.staged[0]
    assert staged.tail == () and file_ids(catalog, staged) == expected(range(4))
    del staged.__dict__["tail"]
    old = saved(state)
    assert "tail" not in old.staged[0].__dict__ and old.staged[0].tail == ()
    resumed = part(catalog, resume=old)
    assert resumed.state == SinkState(1, {0: 3})
    assert ids(catalog) == expected(range(4))


def test_a_lagging_commit_names_the_tail_files_in_later_states(catalog):
    """The commit of seq 1 keeps failing (catalog outage) after its tail's files were written: the next
    state names those files instead of carrying the tail again, and resuming from it lands every row."""
    p = part(catalog)
    p.reload = lambda: p.table
    gate = threading.Event()

    def stalled(files, props, table_props):
        gate.wait(10)
        raise OSError("catalog down")

    p._append = stalled
    p.write_batch([trade(0, o) for o in range(5)])
    first = saved(p.snapshot())
    assert first.staged[0].files == () and tail_ids(first.staged[0]) == expected(range(5))
    p.writer.submit(lambda: None).result()
    while 1 not in p.all_files:  # the committer took the tail's files and is now retrying
        threading.Event().wait(0.01)
    p.write_batch([trade(0, o) for o in range(5, 7)])
    second = saved(p.snapshot())
    lighter, newer = second.staged
    assert (lighter.seq, lighter.tail, lighter.rows) == (1, (), 5)
    assert file_ids(catalog, lighter) == expected(range(5))  # the same rows, now as files
    assert newer.seq == 2 and tail_ids(newer) == expected(range(5, 7))
    gate.set()
    with pytest.raises(BackgroundCommitError):
        p.drain()
    assert ids(catalog) == Counter()
    resumed = part(catalog, resume=second)
    assert resumed.state == SinkState(2, {0: 6})
    assert ids(catalog) == expected(range(7))
