"""One daemon thread that runs submitted jobs strictly in submission order.

The sink's epoch work (Arrow conversion, Parquet files, Iceberg commits) runs here instead of in
Bytewax's worker thread, which then only hands work over. Order matters: the commits of an epoch must
land in seq order, and a staged epoch may only use conversions submitted before it. A daemon thread,
not a `ThreadPoolExecutor`: an executor's threads are joined at interpreter exit, so a commit retrying
with backoff would hold up a flow that is already failing; the exactly-once recovery never needs a
queued job to finish.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_STOP = object()


class SerialWorker:
    def __init__(self, name: str) -> None:
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue `fn(*args)`; its result or exception arrives in the returned future."""
        future: Future = Future()
        self.jobs.put((future, fn, args))
        return future

    def depth(self) -> int:
        """Jobs queued and not yet started (approximate, for the metrics)."""
        return self.jobs.qsize()

    def stop(self, timeout: float | None = None) -> None:
        """Run what is queued, then end the thread."""
        self.jobs.put(_STOP)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is _STOP:
                return
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
