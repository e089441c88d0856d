"""The sink child process: pyiceberg's file writing and commits outside the flow process's GIL.

Started by `connectors/iceberg/remote.py` (one per flow process, `sink.executor: process`). It runs
small primitives only, on its own catalog and its own loaded `Table`s: `write` (IPC blobs -> sorted
data files), `append` (one atomic commit), `landed` (reload + look for a commit), `expire`. Every
decision (retries, seq order, state, metrics, ledger) stays in the parent. Each (table, role) gets a
thread, so a table's writes and commits run concurrently, as with the parent's threads.

It never outlives the parent: PR_SET_PDEATHSIG(SIGKILL), a getppid() check right after it (the parent
may have died before), and exit on EOF of the request pipe. A commit landing after the parent died
could otherwise duplicate the rows a resumed parent commits again.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
# The child's work (files, commits) can wait; the flow's worker thread cannot. On a busy machine a
# child at the flow's priority takes a core from the worker right at each epoch's end; niced, the
# kernel hands it the CPU time the flow process leaves (benchmarks in docs/benchmarks.md).
NICE = 10


def _bind_to_parent(parent: int) -> None:
    """SIGKILL this process when the parent (its spawning thread) ends; exit if it is gone already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError) as exc:  # not Linux: EOF of the pipe is the only guard
        print(f"cryptoflow sink child: no parent-death signal ({exc})", file=sys.stderr, flush=True)
    if os.getppid() != parent:
        os._exit(3)
    # Ctrl-C reaches the whole process group: the flow process decides what happens, and the child
    # ends with it (EOF or the parent-death signal), not with a KeyboardInterrupt of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _serve(request_fd: int, answer_fd: int) -> None:
    """The request loop on the two pipe ends (heavy imports here, after the parent guard: a child of a
    dead parent must not start committing)."""
    from multiprocessing.connection import Connection

    from connectors.iceberg.child_ops import serve

    serve(Connection(request_fd, writable=False), Connection(answer_fd, readable=False))


def serve_forked(parent: int, request_fd: int, answer_fd: int) -> None:
    """The child forked from the flow process: everything is imported already."""
    _bind_to_parent(parent)
    os.dup2(2, 1)  # as a spawned child: a stray print goes to stderr, not into the flow's stdout
    os.nice(NICE)
    _serve(request_fd, answer_fd)


def main() -> None:
    parent, request_fd, answer_fd = (int(a) for a in sys.argv[1:4])
    _bind_to_parent(parent)
    os.nice(NICE)
    from cryptoflow import allocator
    from cryptoflow.logs import setup_logging

    allocator.configure()  # before the lanes' threads start, as in the flow process (a fork inherits it)

    setup_logging()
    _serve(request_fd, answer_fd)


if __name__ == "__main__":
    main()
