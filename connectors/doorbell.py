"""Wake a Bytewax worker when data arrives for one of its partitions, instead of polling.

Why: an empty partition tells Bytewax when to poll again (`next_awake`); with `connector.idle_poll_ms`
1, a frame that arrives while the worker sleeps waits 0-1 ms (0.5 ms on average) before anyone looks at
it: most of the median ingest -> normalized latency at 10k frames/s (docs/benchmarks.md, round 13).
Bytewax has no way to wake a worker from another thread, so the worker's empty partition sleeps here,
in `Doorbell.wait`, for at most `idle_poll_ms`, and a client that hands frames to any of that worker's
channels rings the bell. The wait releases the GIL, exactly as Bytewax's own park does.

One bell per worker thread (`for_this_thread`): a worker polls its partitions one after another, so a
partition may sleep only when *every* channel of its worker is empty and no partition emitted anything
since the worker last slept (those items are still to be processed downstream, in this worker step).
A producer rings once per hand-over (a socket read's frames), and only takes the lock when the worker
is actually asleep.

With `connector.client_loop: worker` the bell has a `driver` (connectors/client_loop.py): instead of
sleeping, the idle worker runs the clients' event loop itself until a hand-over to it stops the loop.

Idle tasks: background work of the worker's own steps (the Iceberg sink's conversion of rows to Arrow,
connectors/iceberg/sink.py) runs here, one slice per idle moment, before the worker drives or sleeps.
Why: on a thread of its own that work competed with the worker for the GIL; a 250-row conversion held
it in pieces of up to the switch interval for ~4 ms of CPU over ~9 ms, and 38 % of the events over
2 ms ingest -> normalized overlapped one (against 6 % for random windows; docs/benchmarks.md, round 14).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Waitable(Protocol):
    def empty(self) -> bool: ...


class IdleTask(Protocol):
    def run_idle(self) -> bool:
        """One short slice of work on the worker thread; False if there was nothing to do."""
        ...


class Doorbell:
    """The worker's side: `wait` when a partition is empty; producers: `ring` after queueing items."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()  # the worker thread whose partitions use this bell
        self.driver: Any = None  # the clients' loop this worker runs while idle (`ClientLoop`), if any
        self._cond = threading.Condition(threading.Lock())
        self._channels: list[Waitable] = []
        self._sleeping = False
        # the partition that last emitted items: until the worker's polling comes back round to it, its
        # items may still be waiting for the downstream steps of this worker, so nobody sleeps
        self.emitter: Any = None
        self.sleeps = 0
        self.wakeups = 0  # sleeps ended by a ring before the timeout
        self._idle_tasks: list[IdleTask] = []
        self.idle_slices = 0

    @property
    def serves_sources(self) -> bool:
        """Whether partitions of this worker wait here (and so run its idle tasks)."""
        return bool(self._channels)

    def add_idle_task(self, task: IdleTask) -> None:
        if task not in self._idle_tasks:
            self._idle_tasks.append(task)

    def remove_idle_task(self, task: IdleTask) -> None:
        if task in self._idle_tasks:
            self._idle_tasks.remove(task)

    def _run_idle_slice(self) -> None:
        """The first idle task with work does one slice (the next idle moment gives the next one)."""
        for task in self._idle_tasks:
            if task.run_idle():
                self.idle_slices += 1
                return

    def attach(self, channel: Any) -> None:
        """Have `channel`'s producers ring this bell (it needs a `doorbell` attribute and `empty()`)."""
        if channel not in self._channels:
            self._channels.append(channel)
            channel.doorbell = self

    def detach(self, channel: Any, partition: Any = None) -> None:
        if channel in self._channels:
            self._channels.remove(channel)
            channel.doorbell = None
        if partition is not None and self.emitter is partition:
            self.emitter = None

    def emitted(self, partition: Any) -> None:
        """Worker thread: `partition` returned items in this poll."""
        self.emitter = partition

    def _pending(self) -> bool:
        return any(not channel.empty() for channel in self._channels)

    def ring(self) -> None:
        """Producer, after queueing: wake the worker if it sleeps (a flag check otherwise); a producer
        running inside the worker's own drive of the clients' loop stops the loop instead."""
        if self._sleeping:
            with self._cond:
                self._cond.notify()
        elif self.driver is not None and threading.get_ident() == self.owner:
            self.driver.stop_if_driven_here()

    def consumer_is_here(self) -> bool:
        """Whether the caller is this bell's worker (a producer running in its drive of the clients'
        loop): waiting for room would wait for itself."""
        return threading.get_ident() == self.owner

    def wait(self, partition: Any, timeout_s: float) -> None:
        """Worker thread, from an empty `partition`: return at once if its worker has work (another
        partition emitted since this one was last polled, or a channel is not empty), else sleep until a
        ring or `timeout_s`."""
        if self.emitter is not None:
            if self.emitter is not partition:
                return
            self.emitter = None  # a whole round of polls since its items: they went downstream
        if self._idle_tasks:
            if self._pending():
                return
            self._run_idle_slice()
        driver = self.driver
        if driver is not None:
            if self._pending():
                return
            if driver.drive(timeout_s, self._pending):  # ran the clients' loop until a hand-over
                return
            # the loop's own thread kept it (busy for all of timeout_s): sleep until it hands frames over
        with self._cond:
            # announced before the check: a producer that queued after the check sees `_sleeping` and
            # notifies (under the lock, so not before this thread is waiting)
            self._sleeping = True
            try:
                if not self._pending():
                    self.sleeps += 1
                    if self._cond.wait(timeout_s):
                        self.wakeups += 1
            finally:
                self._sleeping = False


_local = threading.local()


def for_this_thread() -> Doorbell:
    """The calling worker thread's bell (created on first use)."""
    bell = getattr(_local, "bell", None)
    if bell is None:
        bell = _local.bell = Doorbell()
    return bell
