"""The sink child's primitives and its request loop (connectors/iceberg/child.py starts it).

A request is `(call_id, op, key, args, layout)`; with a layout, raw messages follow (a write's IPC
streams, grouped) that become the op's first argument. The answer is `(call_id, ok, value)`: the op's
result, or the exception it raised. An exception goes back with its type (the parent's retry
classification needs it) when it survives a pickle round trip; otherwise as a `RemoteError` naming its
type and message. The child's traceback rides along as a note on the exception."""

from __future__ import annotations

import logging
import os
import pickle
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from connectors.iceberg import staging
from connectors.iceberg.catalog import load_catalog
from connectors.iceberg.maintenance import expire_snapshots
from connectors.iceberg.ordering import sort_rows
from connectors.iceberg.remote import RemoteError
from connectors.iceberg.sink import find_commit
from cryptoflow import allocator
from cryptoflow.config import CatalogConfig, SinkConfig

log = logging.getLogger("connectors.iceberg.child")

# which thread of a table runs an op: writes beside commits, each in order
ROLES = {
    "open": "commit",
    "write": "write",
    "append": "commit",
    "landed": "commit",
    "expire": "commit",
    "close": "commit",
}


@dataclass
class _Table:
    """A loaded table. `lock`: its write and commit lanes never use the table at the same time. A commit
    deep-copies the table's metadata while a write reads it, and the read fills pyiceberg's lazily
    cached properties (`Schema.name_mapping` and the like) into those same objects: a copy that meets
    that failed with "dictionary changed size during iteration" in a 600 s chaos run."""

    catalog: Any
    identifier: tuple[str, str]
    table: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


class ChildOps:
    """The child's tables by key and the primitives the parent calls on them."""

    def __init__(self) -> None:
        self.catalogs: dict[str, Any] = {}
        self.tables: dict[str, _Table | None] = {}
        self.opened: dict[str, threading.Event] = {}
        self.sources: dict[str, tuple[CatalogConfig, str, str]] = {}

    def opening(self, key: str) -> None:
        """Main loop, on an `open` request: the table's other ops wait for it (the parent does not)."""
        self.opened[key] = threading.Event()

    def entry(self, key: str) -> _Table:
        """The loaded table; if its `open` failed (a catalog outage), loading again now, so the error
        reaches the parent's retry loop with its own type."""
        self.opened[key].wait()
        entry = self.tables[key]
        if entry is None:
            entry = self.tables[key] = self._load(*self.sources[key])
        return entry

    def _load(self, catalog: CatalogConfig, namespace: str, name: str) -> _Table:
        cache = catalog.model_dump_json()
        if cache not in self.catalogs:
            self.catalogs[cache] = load_catalog(catalog)
        cat = self.catalogs[cache]
        return _Table(cat, (namespace, name), cat.load_table((namespace, name)))

    def open(self, key: str, catalog: CatalogConfig, namespace: str, name: str) -> None:
        self.sources[key], self.tables[key] = (catalog, namespace, name), None
        try:
            self.tables[key] = self._load(catalog, namespace, name)
        finally:
            self.opened[key].set()

    def close(self, key: str) -> None:
        self.tables.pop(key, None)
        self.opened.pop(key, None)
        self.sources.pop(key, None)

    def write(self, key: str, blobs: list[bytes], sort_keys: Any) -> list[Any]:
        """The rows of the stager's IPC blobs, sorted, as data files (nothing committed)."""
        started = time.perf_counter()
        arrow = staging.from_ipc(blobs)
        if arrow is None:
            return []
        arrow = sort_rows(arrow, sort_keys)
        sorted_at = time.perf_counter()
        entry = self.entry(key)
        with entry.lock:
            files = staging.write_data_files(entry.table, arrow)
        log.debug(
            "%s: %d rows in %d files (decode+sort %.0f ms, files %.0f ms)",
            key, arrow.num_rows, len(files), (sorted_at - started) * 1000, (time.perf_counter() - sorted_at) * 1000,
        )  # fmt: skip
        return files

    def append(
        self, key: str, files: Any, props: dict[str, str], table_props: dict[str, str], bounds: dict[str, str]
    ) -> None:
        entry = self.entry(key)
        with entry.lock:
            staging.commit_append(entry.table, files, props, table_props, bounds)
        # Once per epoch, as the flow process does: free pages go back to the OS (issue #6: without it
        # the child's RSS crept up in the chaos run). Not after each write: the next write reuses the
        # last one's freed pages, where trimming made it fault every page in again (docs/benchmarks.md,
        # round 16: without it the child's page faults fell by half to two thirds).
        allocator.release()

    def landed(self, key: str, writer_id: str, seq: int) -> bool:
        """Reload the table and look for `(writer_id, seq)`."""
        entry = self.entry(key)
        with entry.lock:
            entry.table = entry.catalog.load_table(entry.identifier)
            return find_commit(entry.table, writer_id, seq)

    def expire(self, key: str, cfg: SinkConfig) -> tuple[int, int]:
        """(snapshots removed, snapshots kept); after a failure the table is reloaded, then it raises."""
        entry = self.entry(key)
        with entry.lock:
            try:
                removed = expire_snapshots(entry.table, cfg)
            except Exception:
                try:
                    entry.table = entry.catalog.load_table(entry.identifier)
                except Exception as reload_exc:  # the expiry's own error is the one to report
                    log.warning("%s: reload after the failed expiry failed (%s)", key, reload_exc)
                raise
            return removed, len(entry.table.metadata.snapshots)


def portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling (with the child's traceback as a note), else a RemoteError."""
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"in the sink child (pid {os.getpid()}):\n{text}")
        back = pickle.loads(pickle.dumps(exc))
        if type(back) is type(exc):
            return exc
    except Exception:
        pass
    return RemoteError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc} (not picklable)\n{text}")


def receive_request(requests: Any) -> tuple[int, str, str, tuple]:
    """One request of `remote.send_request`: with a layout, its blobs follow as raw messages and become
    the op's first argument."""
    call_id, op, key, args, layout = requests.recv()
    if layout is not None:
        args = (_receive_blobs(requests, layout), *args)
    return call_id, op, key, args


def _receive_blobs(requests: Any, layout: list[list[int]]) -> list[Any]:
    """A raw message per group, split by the sizes the request gave (views into it, no copies)."""
    blobs: list[Any] = []
    for sizes in layout:
        message = requests.recv_bytes()
        if len(sizes) == 1:
            blobs.append(message)
            continue
        view, at = memoryview(message), 0
        for size in sizes:
            blobs.append(view[at : at + size])
            at += size
    return blobs


def serve(requests: Any, answers: Any) -> None:
    """Read requests until EOF (the parent closed its end or died), run each on its (table, role)
    thread, send answers back; EOF ends the process at once, abandoning running jobs."""
    ops, lanes, send_lock = ChildOps(), {}, threading.Lock()

    def answer(call_id: int, ok: bool, value: Any) -> None:
        """The value pickled on its own: the parent unpickles it apart from the frame, so one answer
        that does not load there fails its own call, not the pipe."""
        try:
            payload = pickle.dumps(value)
        except Exception as exc:  # the result does not pickle: say so instead
            ok, payload = False, pickle.dumps(portable(exc))
        with send_lock:
            try:
                answers.send((call_id, ok, payload))
            except (OSError, ValueError):  # the parent is gone
                os._exit(0)

    def lane(jobs: queue.SimpleQueue) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            call_id, op, key, args = job
            try:
                value = getattr(ops, op)(key, *args)
            except BaseException as exc:  # every failure is the parent's to judge
                answer(call_id, False, portable(exc))
            else:
                answer(call_id, True, value)
            if op == "close":
                return

    while True:
        try:
            call_id, op, key, args = receive_request(requests)
        except (EOFError, OSError):
            os._exit(0)
        if op == "open":
            ops.opening(key)
        role = (key, ROLES[op])
        if role not in lanes:
            lanes[role] = queue.SimpleQueue()
            threading.Thread(target=lane, args=(lanes[role],), name=f"{key}-{role[1]}", daemon=True).start()
        lanes[role].put((call_id, op, key, args))
        if op == "close":  # the table's threads end: the commit lane after this job, the writer now
            lanes.pop(role)
            writer = lanes.pop((key, "write"), None)
            if writer is not None:
                writer.put(None)
