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


def _die(where: str) -> None:
    print(f"CRYPTOFLOW-FAULT-FIRED {where}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def _install() -> None:
    fault = os.environ.get("CFTEST_FAULT", "")
    pace = float(os.environ.get("CFTEST_FAULT_PACE_S", "0") or 0)
    if not fault and not pace:
        return
    point, _, arg = fault.partition(":")
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
