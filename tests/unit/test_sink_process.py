"""`sink.executor: process`: the sink's files, commits, reloads and expiry run in one child process per
flow process, with the same exactly-once outcome as the threads; the child's death fails the flow
loudly and a resume commits once; the child never outlives its parent; exceptions come back typed, or
readable when they do not pickle."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.exceptions import NoSuchTableError

from connectors.iceberg.catalog import load_catalog
from connectors.iceberg.child_ops import portable
from connectors.iceberg.remote import RemoteError, RemoteTable, SinkChildDied, SinkProcess
from connectors.iceberg.sink import BackgroundCommitError, IcebergSink, SinkState, committed_state
from connectors.iceberg.staging import to_ipc
from cryptoflow import metrics
from cryptoflow.config import ParquetConfig
from tests.support.sinks import FAST, TICKS, catalog_cfg, ids, load, trade

REPO = Path(__file__).resolve().parents[2]
STEP = "ticks.iceberg"


def process_sink(tmp_path, **cfg) -> IcebergSink:
    retry = FAST.model_copy(update={"executor": "process", **cfg})
    return IcebergSink(TICKS, catalog_cfg(tmp_path), ParquetConfig(), "ticks", retry)


def build(sink: IcebergSink, resume=None):
    return sink.build_part(STEP, sink.list_parts()[0], resume)


def epoch(p, offsets) -> SinkState:
    p.write_batch([trade(0, o) for o in offsets])
    return p.snapshot()


def counted(reason: str) -> float:
    return metrics.SINK_FAILURES.labels(TICKS.name, reason)._value.get()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_child_writes_and_commits_every_row_once(tmp_path):
    sink = process_sink(tmp_path, stage_rows=4)  # files are written during the epoch, in the child
    p = build(sink)
    assert p.remote is not None
    epoch(p, range(10))
    epoch(p, range(10, 25))
    p.close()
    cat = sink_catalog(tmp_path)
    assert ids(cat) == {str(o): 1 for o in range(25)}
    assert committed_state(load(cat), p.writer_id).seq == 2
    child = SinkProcess.shared()
    assert child.pid not in (None, os.getpid()) and alive(child.pid)
    # the files came from the child: this process's table object never saw a commit
    assert p.table.current_snapshot() is None


def sink_catalog(tmp_path):
    from connectors.iceberg.catalog import load_catalog

    return load_catalog(catalog_cfg(tmp_path))


def test_a_staged_tail_resumes_through_the_child_once(tmp_path):
    sink = process_sink(tmp_path, stage_rows=0)  # every row is in the tail
    p = build(sink)
    p._commit_in_background = lambda staged: None  # the process dies before the background commit
    state = pickle.loads(pickle.dumps(epoch(p, range(7))))
    assert state.staged and state.staged[0].tail
    resumed = build(sink, state)  # writes the tail's files in the child, commits them
    assert ids(sink_catalog(tmp_path)) == {str(o): 1 for o in range(7)}
    epoch(resumed, range(5, 12))  # replays of 5, 6 dropped
    resumed.close()
    assert ids(sink_catalog(tmp_path)) == {str(o): 1 for o in range(12)}


def test_the_child_dying_fails_the_flow_loudly_and_a_resume_commits_once(tmp_path):
    sink = process_sink(tmp_path)
    p = build(sink)
    epoch(p, range(5))
    p.drain()
    child = SinkProcess.shared()
    before = counted("sink_child")
    p._commit_in_background = lambda staged: None  # hold the commit: the state saved carries the epoch
    state = pickle.loads(pickle.dumps(epoch(p, range(5, 9))))
    os.kill(child.pid, signal.SIGKILL)
    assert wait_gone(child.pid)
    del p._commit_in_background
    deadline = time.monotonic() + 10
    while child.dead is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "exited with code -9" in child.dead
    p.write_batch([trade(0, o) for o in range(9, 11)])
    with pytest.raises(BackgroundCommitError) as failed:
        p.snapshot()
        p.drain()
    assert isinstance(failed.value.__cause__, SinkChildDied)
    assert counted("sink_child") > before
    # recovery: a new flow process (here: a new child) resumes from the last saved state, once
    resumed = build(sink, state)
    assert SinkProcess.shared() is not child
    epoch(resumed, range(9, 11))
    resumed.close()
    assert ids(sink_catalog(tmp_path)) == {str(o): 1 for o in range(11)}


def test_exceptions_come_back_with_their_type(tmp_path):
    sink = process_sink(tmp_path)
    p = build(sink)
    blob = to_ipc(TICKS.to_arrow([trade(0, 1).row]))
    with pytest.raises(KeyError, match="no_such_column") as raised:  # no such column to sort by
        p.remote.write([blob], [("no_such_column", "ascending")])
    assert any("in the sink child" in note for note in raised.value.__notes__)
    assert p.remote.write([blob], TICKS.sort_keys)[0].record_count == 1  # the child carries on
    p.close()


def test_an_unpicklable_exception_comes_back_readable():
    class Local(Exception):  # a class defined in a function does not pickle
        pass

    exc = Local("the catalog said no")
    exc.lock = threading.Lock()
    sent = portable(exc)
    assert isinstance(sent, RemoteError)
    back = pickle.loads(pickle.dumps(sent))
    assert "Local" in str(back) and "the catalog said no" in str(back) and "not picklable" in str(back)
    ok = portable(FileNotFoundError(2, "gone"))
    assert isinstance(pickle.loads(pickle.dumps(ok)), FileNotFoundError)


class Unpicklable(Exception):
    """Holds a lock: pickling it fails."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class Poison:
    """A writer id that raises `Unpicklable` in the child (`writer_key` adds it to a prefix)."""

    def __radd__(self, other):
        raise Unpicklable("the catalog said no")


def test_an_unpicklable_exception_raised_in_the_child_comes_back_readable(tmp_path):
    sink = process_sink(tmp_path)
    p = build(sink)
    with pytest.raises(RemoteError) as raised:
        p.remote.landed(Poison(), 1)
    text = str(raised.value)
    assert "Unpicklable" in text and "the catalog said no" in text and "not picklable" in text
    assert "__radd__" in text  # the child's traceback
    assert p.remote.landed(p.writer_id, 1) is False  # the child carries on
    p.close()


PARENT = textwrap.dedent(
    """
    import sys, threading, time
    from connectors.iceberg.remote import SinkProcess
    box = []
    if sys.argv[1] == "thread":
        # spawned from a thread that ends at once: the child must stay bound to the process, not to it
        t = threading.Thread(target=lambda: box.append(SinkProcess.shared()))
        t.start(); t.join()
    else:  # forked from the main thread, the only thread
        box.append(SinkProcess.shared())
    child = box[0]
    child.ready.wait(30)
    print(child.pid, flush=True)
    time.sleep(1.0)
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()  # the main thread is not alone
    print("alive" if child.dead is None else child.dead, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("started_from", ["thread", "main"])
def test_the_child_does_not_outlive_a_sigkilled_parent(started_from):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, started_from], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        pid = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "alive"  # the spawning thread ended; the child lives
        assert Path(f"/proc/{pid}/status").read_text().count(f"PPid:\t{parent.pid}") == 1
        assert alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_gone(pid), f"sink child {pid} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_table_the_child_cannot_load_fails_its_first_call(tmp_path):
    process = SinkProcess.shared()
    remote = RemoteTable(process, catalog_cfg(tmp_path), "cryptoflow", "no_such_table")
    for _ in range(2):  # each call tries to load it again: a catalog outage is retried by the caller
        with pytest.raises(NoSuchTableError):
            remote.landed("w", 1)
    remote.close()


class _Overlap:
    """Records how many of the wrapped table calls run at once."""

    def __init__(self) -> None:
        self.lock, self.active, self.most = threading.Lock(), 0, 0

    def wrap(self, result):
        def call(*args, **kwargs):
            with self.lock:
                self.active += 1
                self.most = max(self.most, self.active)
            time.sleep(0.01)
            with self.lock:
                self.active -= 1
            return result

        return call


def _race(*calls, rounds: int = 15) -> None:
    threads = [threading.Thread(target=lambda c=c: [c() for _ in range(rounds)]) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_the_childs_write_and_commit_lanes_never_use_one_table_at_once(tmp_path, monkeypatch):
    """A commit deep-copies the table's metadata while a write fills pyiceberg's lazily cached properties
    into it ("dictionary changed size during iteration" in a 600 s chaos run): one table, one at a time."""
    from connectors.iceberg import child_ops, staging

    build(IcebergSink(TICKS, catalog_cfg(tmp_path), ParquetConfig(), "ticks", FAST))  # creates the table
    overlap = _Overlap()
    monkeypatch.setattr(staging, "write_data_files", overlap.wrap([]))
    monkeypatch.setattr(staging, "commit_append", overlap.wrap(None))
    monkeypatch.setattr(child_ops, "expire_snapshots", overlap.wrap(0))
    ops = child_ops.ChildOps()
    ops.opening("t")
    ops.open("t", catalog_cfg(tmp_path), catalog_cfg(tmp_path).namespace, TICKS.name)
    blob = [to_ipc(pa.table({"trade_id": pa.array([1], pa.int64())}))]
    _race(
        lambda: ops.write("t", blob, [("trade_id", "ascending")]),
        lambda: ops.append("t", [], {}, {}, {}),
        lambda: ops.expire("t", FAST),
    )
    assert overlap.most == 1


def test_the_child_hands_free_pages_back_after_each_commit_not_each_write(tmp_path, monkeypatch):
    """Without a release the child's RSS climbed 170 -> 195 MB in a 600 s chaos run while the flow
    stayed flat (issue #6). One per commit (an epoch) is enough; one per write made the next write fault
    in again the pages the last one had freed (docs/benchmarks.md, round 16)."""
    from connectors.iceberg import child_ops
    from cryptoflow import allocator

    build(IcebergSink(TICKS, catalog_cfg(tmp_path), ParquetConfig(), "ticks", FAST))  # creates the table
    ops = child_ops.ChildOps()
    ops.opening("t")
    ops.open("t", catalog_cfg(tmp_path), catalog_cfg(tmp_path).namespace, TICKS.name)
    releases = []
    monkeypatch.setattr(allocator, "release", lambda: releases.append(1))
    files = []
    for part in range(2):
        arrow = TICKS.to_arrow([trade(0, o).row for o in range(part * 50, part * 50 + 50)])
        files += ops.write("t", [to_ipc(arrow)], TICKS.sort_keys)
    assert len(files) >= 2 and releases == []
    ops.append("t", files, {}, {}, {})
    assert len(releases) == 1
    table = load(load_catalog(catalog_cfg(tmp_path)))
    assert int(table.current_snapshot().summary["total-records"]) == 100


def test_thread_mode_writes_and_commits_never_use_the_table_at_once(tmp_path, monkeypatch):
    import connectors.iceberg.sink as sink_module

    thread = FAST.model_copy(update={"executor": "thread"})
    p = build(IcebergSink(TICKS, catalog_cfg(tmp_path), ParquetConfig(), "ticks", thread))
    assert p.remote is None
    overlap = _Overlap()
    monkeypatch.setattr(sink_module, "write_data_files", overlap.wrap([]))
    monkeypatch.setattr(sink_module, "commit_append", overlap.wrap(None))
    _race(lambda: p._write_files(None, 1), lambda: p._append([], {}, {}))
    assert overlap.most == 1
    p.close()
