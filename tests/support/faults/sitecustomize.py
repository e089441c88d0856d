"""Fault injection for crash tests, loaded only by flow processes the tests start (PYTHONPATH).

CFTEST_FAULT picks where the process SIGKILLs itself:
  read:N          after the journal source returned its N-th non-empty batch
  parquet:N       once the sink's N-th write of data files is done (files written, none committed)
  after_commit:N  right after the N-th Iceberg commit landed, before Bytewax stores its snapshot
  staged:N        in the sink's committer thread, 0.3 s after the N-th epoch was staged (snapshot()
                  returned its written files and its tail of unwritten rows in the state, which
                  Bytewax stores meanwhile) and before its background commit: the resume must write
                  the tail's files from the state and commit the epoch, once
  random:S        after S seconds, wherever the process is
  sink_child:N    only the sink child process (sink.executor: process) dies, at the start of its N-th
                  write of data files: the flow must fail loudly (not -9) and a resume commit once

With `sink.executor: process` this file is loaded by the sink child too (same PYTHONPATH;
CRYPTOFLOW_SINK_CHILD is set there): `parquet:N` then fires in the child, which does the writing, and
kills the flow process first, so the whole flow dies as it does with the threads. `after_commit` and
`staged` fire in the flow process, whose committer thread returns once the child's commit landed.
CFTEST_FAULT_PACE_S slows the journal source (seconds per batch) so a short recording spans
several epochs; with it, the first non-empty batch prints `CRYPTOFLOW-READING` so a test can act while
the source is mid-stream instead of after a fixed sleep. Each fault point prints a marker line so the
test can tell which fault really fired.
"""

import os
import signal
import sys
import threading
import time

IN_CHILD = bool(os.environ.get("CRYPTOFLOW_SINK_CHILD"))


def _die(where: str) -> None:
    print(f"CRYPTOFLOW-FAULT-FIRED {where}", file=sys.stderr, flush=True)
    if IN_CHILD:  # the flow process first: the whole flow dies, as when the flow does the work itself
        os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def cryptoflow_sink_child() -> None:
    """Called by connectors/iceberg/remote.py in a sink child forked from the flow process (a spawned
    one loads this file itself, with CRYPTOFLOW_SINK_CHILD set)."""
    global IN_CHILD
    IN_CHILD = True
    point, _, arg = os.environ.get("CFTEST_FAULT", "").partition(":")
    _install_child(point, arg)


def _install_child(point: str, arg: str) -> None:
    """The sink child's fault points: its writes are the flow's writes."""
    if point not in ("parquet", "sink_child"):
        return
    import connectors.iceberg.staging as staging

    original_write = staging.write_data_files
    calls = [0]

    def write_data_files(table, arrow):
        calls[0] += 1
        if point == "sink_child" and calls[0] == int(arg):
            print(f"CRYPTOFLOW-SINK-CHILD-KILLED write:{arg}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        files = original_write(table, arrow)
        if point == "parquet" and calls[0] == int(arg):
            _die(f"parquet:{arg} files={len(files)} in=sink-child")
        return files

    staging.write_data_files = write_data_files


def _install() -> None:
    fault = os.environ.get("CFTEST_FAULT", "")
    pace = float(os.environ.get("CFTEST_FAULT_PACE_S", "0") or 0)
    if not fault and not pace:
        return
    point, _, arg = fault.partition(":")
    if IN_CHILD:
        _install_child(point, arg)
        return
    import connectors.source as source

    original_next = source.JournalShardPartition.next_batch
    reads = [0]

    def next_batch(self):
        batch = original_next(self)
        if pace and batch:
            time.sleep(pace)
        if batch:
            reads[0] += 1
            if pace and reads[0] == 1:
                print("CRYPTOFLOW-READING", file=sys.stderr, flush=True)
            if point == "read" and reads[0] == int(arg):
                _die(f"read:{arg} offset={self.reader.next_offset}")
        return batch

    source.JournalShardPartition.next_batch = next_batch

    if point == "parquet":
        # the sink's own writer (connectors/iceberg/staging.py no longer goes through pyiceberg's
        # write_file): die once the N-th write's data files exist, before any commit names them
        import connectors.iceberg.sink as sink

        original_write = sink.write_data_files
        calls = [0]

        def write_data_files(table, arrow):
            calls[0] += 1
            files = original_write(table, arrow)
            if calls[0] == int(arg):
                _die(f"parquet:{arg} files={len(files)}")
            return files

        sink.write_data_files = write_data_files
    elif point == "after_commit":
        import connectors.iceberg.sink as sink

        original_commit = sink.IcebergSinkPartition._commit
        commits = [0]

        def _commit(self, arrow, target):
            original_commit(self, arrow, target)
            commits[0] += 1
            if commits[0] == int(arg):
                _die(f"after_commit:{arg} seq={target.seq}")

        sink.IcebergSinkPartition._commit = _commit
    elif point == "staged":
        import connectors.iceberg.sink as sink

        original_background = sink.IcebergSinkPartition._commit_in_background
        staged = [0]

        def _commit_in_background(self, commit):
            staged[0] += 1
            if staged[0] == int(arg):
                time.sleep(0.3)  # let Bytewax write the snapshot that carries the staged files
                _die(f"staged:{arg} seq={commit.seq}")
            original_background(self, commit)

        sink.IcebergSinkPartition._commit_in_background = _commit_in_background
    elif point == "random":
        timer = threading.Timer(float(arg), _die, args=(f"random:{arg}",))
        timer.daemon = True
        timer.start()


_install()
