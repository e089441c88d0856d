"""The flow process's side of the sink child (`sink.executor: process`, connectors/iceberg/child.py).

One child per flow process, started by the first Iceberg sink built (early: while Bytewax builds the
rest of the flow) and shared by every table of the process. The partition's writer and committer
threads call it and block on the answer, with the GIL released, so Parquet encoding, manifests, Avro
and metadata JSON no longer compete with the Bytewax worker thread.

How it starts: forked from the main thread when that is the process's only Python thread (the flow's
first `IcebergSink` is built while Bytewax imports the flow module, before any other thread exists): the
child then has pyiceberg and pyarrow imported already and is ready in milliseconds, where a fresh
interpreter needs ~1.6-2.3 s of imports, which a short flow waits for at its first commit. Otherwise
(another thread exists, no fork) a dedicated thread starts `python -m connectors.iceberg.child`, and
then reads its answers for as long as the child lives. Either way the child's parent-death signal is
bound to a thread that lives as long as the process (the main thread) or as the child (the reader).
When the child dies, every pending and later call raises `SinkChildDied` (not retryable): the flow
stops loudly and recovery resumes from the last durable state.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: the pipe keeps its size
    fcntl = None  # type: ignore[assignment]

from cryptoflow import metrics
from cryptoflow.config import CatalogConfig, SinkConfig

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
CHILD_ENV = "CRYPTOFLOW_SINK_CHILD"  # set in the child's environment (fault injection tells them apart)
READY_TIMEOUT_S = 60.0


class RemoteError(RuntimeError):
    """An exception of the sink child that could not travel back as itself (it does not pickle)."""


class SinkChildDied(RuntimeError):
    """The sink child process is gone: its running and later calls cannot complete."""


class SinkProcess:
    """The child process and its request/answer pipes; `call` is safe from any thread."""

    _shared: SinkProcess | None = None
    _shared_pid = 0
    _lock = threading.Lock()

    @classmethod
    def shared(cls) -> SinkProcess:
        """This process's child, started on first use (a forked process gets its own)."""
        with cls._lock:
            if cls._shared is None or cls._shared_pid != os.getpid() or cls._shared.dead is not None:
                cls._shared, cls._shared_pid = cls(), os.getpid()
            return cls._shared

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.lock = threading.Lock()  # pending, dead, the request pipe
        self.pending: dict[int, Future] = {}
        self.ids = itertools.count()
        self.dead: str | None = None
        self.requests: Connection | None = None
        self.pid: int | None = None
        self.started = time.perf_counter()
        started = None
        if _can_fork():
            started = self._fork()
        threading.Thread(target=self._run, args=(started,), name="sink-child", daemon=True).start()

    def _fork(self) -> tuple[Connection, Any]:
        """Fork the child from the main thread (the only thread: nothing holds a lock it would need)."""
        child_requests, requests = _request_pipe()
        answers, child_answers = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the flow's code
            code = 0
            try:
                os.close(requests)
                os.close(answers)
                os.environ[CHILD_ENV] = "1"
                hook = getattr(sys.modules.get("sitecustomize"), "cryptoflow_sink_child", None)
                if hook is not None:  # the crash tests' fault points (tests/support/faults)
                    hook()
                from connectors.iceberg.child import serve_forked

                serve_forked(parent, child_requests, child_answers)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(child_requests)
        os.close(child_answers)
        self.requests, self.pid = Connection(requests, readable=False), pid
        log.info("sink child process forked (pid %d)", pid)
        self.ready.set()
        return Connection(answers, writable=False), _Forked(pid)

    def _run(self, started: tuple[Connection, Any] | None) -> None:
        """Spawn the child (unless forked), then read its answers until it ends (this thread outlives
        a spawned child)."""
        try:
            answers, proc = started or self._spawn()
        except BaseException as exc:
            self._died(f"the sink child process could not start: {type(exc).__name__}: {exc}")
            self.ready.set()
            return
        self.ready.set()
        while True:
            try:
                call_id, ok, payload = answers.recv()
            except (EOFError, OSError):
                break
            try:
                value = pickle.loads(payload)
            except Exception as exc:  # an answer that does not load here fails its own call only
                ok, value = (
                    False,
                    RemoteError(f"the sink child's answer does not unpickle: {type(exc).__name__}: {exc}"),
                )
            with self.lock:
                future = self.pending.pop(call_id, None)
            if future is None:
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        code = proc.wait()
        self._died(f"the sink child process (pid {proc.pid}) exited with code {code}")

    def _spawn(self) -> tuple[Connection, subprocess.Popen]:
        child_requests, requests = _request_pipe()
        answers, child_answers = os.pipe()
        env = dict(os.environ)
        env[CHILD_ENV] = "1"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "connectors.iceberg.child", str(os.getpid())]
        try:
            proc = subprocess.Popen(
                [*cmd, str(child_requests), str(child_answers)],
                pass_fds=(child_requests, child_answers),
                stdin=subprocess.DEVNULL,
                stdout=2,  # a stray print must not end up anywhere else; logs go to stderr
                env=env,
                cwd=os.getcwd(),
            )
        except BaseException:
            for fd in (child_requests, requests, answers, child_answers):
                os.close(fd)
            raise
        os.close(child_requests)
        os.close(child_answers)
        self.requests, self.pid = Connection(requests, readable=False), proc.pid
        log.info("sink child process started (pid %d)", proc.pid)
        return Connection(answers, writable=False), proc

    def _died(self, why: str) -> None:
        """Fail every pending call and every later one."""
        with self.lock:
            if self.dead is not None:
                return
            self.dead = why
            pending, self.pending = self.pending, {}
        if pending:
            log.error("%s; %d sink calls fail", why, len(pending))
        else:
            log.info("%s", why)
        for future in pending.values():
            future.set_exception(SinkChildDied(why))

    def submit(self, op: str, key: str, *args: Any, blobs: Sequence[bytes] | None = None) -> Future:
        """Send one request; its answer (or the child's death) arrives in the returned future. `blobs`
        follow the request as raw messages, not inside its pickle: pickling a chunk's ~12 MB of IPC
        streams held the GIL for 3-20 ms in one piece, and the worker thread waited that long. The
        request says how they are grouped (`_groups`, joined ~1 MB at a time) and the child splits
        them again (connectors/iceberg/child_ops.py)."""
        if not self.ready.wait(READY_TIMEOUT_S):
            raise SinkChildDied(f"the sink child process did not start within {READY_TIMEOUT_S:.0f} s")
        future: Future = Future()
        with self.lock:
            if self.dead is not None:
                raise SinkChildDied(self.dead)
            call_id = next(self.ids)
            self.pending[call_id] = future
            try:
                send_request(self.requests, (call_id, op, key, args), blobs)
            except (OSError, ValueError) as exc:
                self.pending.pop(call_id, None)
                raise SinkChildDied(f"the sink child process is gone ({type(exc).__name__}: {exc})") from exc
        return future

    def call(self, op: str, key: str, *args: Any, blobs: Sequence[bytes] | None = None) -> Any:
        return self.submit(op, key, *args, blobs=blobs).result()


REQUEST_PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged process (pipe-max-size)
GROUP_BYTES = 1 << 20  # a write's IPC streams go in raw messages of about this size


def _request_pipe() -> tuple[int, int]:
    """(read end, write end) of the request pipe, widened where Linux allows: every write that fills the
    pipe gives up the GIL and then waits up to the switch interval to get it back, so a chunk's ~12 MB
    went in ~180 writes of 64 KB; in writes of 1 MB it takes about a dozen."""
    read_end, write_end = os.pipe()
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only (and None without fcntl)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, set_size, REQUEST_PIPE_BYTES)
    return read_end, write_end


def _groups(blobs: Sequence[bytes]) -> list[list[bytes]]:
    """Consecutive blobs in groups of up to GROUP_BYTES (a larger blob alone): one raw message each."""
    groups: list[list[bytes]] = []
    size = GROUP_BYTES
    for blob in blobs:
        if size + len(blob) > GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(blob)
        size += len(blob)
    return groups


def send_request(requests: Connection, request: tuple, blobs: Sequence[bytes] | None) -> None:
    """`request` with its layout, then the blobs' raw messages (`child_ops.receive_request` reads them)."""
    groups = None if blobs is None else _groups(blobs)
    requests.send((*request, None if groups is None else [[len(blob) for blob in group] for group in groups]))
    for group in groups or ():
        requests.send_bytes(group[0] if len(group) == 1 else b"".join(group))


def _can_fork() -> bool:
    """Forking is safe here: Linux, the main thread, no other Python thread (a fork copies only the
    calling thread; a lock another thread holds would stay held in the child forever)."""
    return (
        sys.platform == "linux"
        and threading.current_thread() is threading.main_thread()
        and threading.active_count() == 1
        and os.environ.get("CRYPTOFLOW_SINK_CHILD_START", "fork") == "fork"
    )


class _Forked:
    """`wait()` for a forked child, as `Popen.wait()` reports it (negative signal number)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


class RemoteTable:
    """One table in the sink child: the primitives the partition's threads call (all blocking).

    A call that fails because the child died is counted (`cryptoflow_sink_failures_total{reason=
    "sink_child"}`) and raises `SinkChildDied`; other exceptions come back as the child raised them."""

    _keys = itertools.count()

    def __init__(self, process: SinkProcess, catalog: CatalogConfig, namespace: str, name: str) -> None:
        self.process, self.name = process, name
        self.key = f"{name}#{next(self._keys)}"
        # not waited for: the child may still be starting; its failure fails the table's next call
        self.opened = process.submit("open", self.key, catalog, namespace, name)

    def _call(self, op: str, *args: Any, blobs: Sequence[bytes] | None = None) -> Any:
        try:
            return self.process.call(op, self.key, *args, blobs=blobs)
        except SinkChildDied as exc:
            metrics.SINK_FAILURES.labels(self.name, "sink_child").inc()
            log.error("%s: sink child call %r failed: %s", self.name, op, exc)
            raise

    def write(self, blobs: list[bytes], sort_keys: Any) -> list[Any]:
        return self._call("write", sort_keys, blobs=blobs)

    def append(
        self, files: Any, props: dict[str, str], table_props: dict[str, str], bounds: dict[str, str]
    ) -> None:
        self._call("append", list(files), props, table_props, bounds)

    def landed(self, writer_id: str, seq: int) -> bool:
        return self._call("landed", writer_id, seq)

    def expire(self, cfg: SinkConfig) -> tuple[int, int]:
        return self._call("expire", cfg)

    def close(self) -> None:
        """Forget the table in the child (nothing waits for the answer)."""
        with contextlib.suppress(SinkChildDied):
            self.process.submit("close", self.key)
