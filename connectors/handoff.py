"""The bounded queue between a shard's client threads and its source partition (queue mode).

`queue.Queue` takes a lock and signals a condition on every put and every get: two lock round trips
and a notify per frame, between two threads that share one GIL. Here the deque's own atomic append and
popleft carry the items; the lock is taken only when a producer has to wait for room (backpressure
policy `wait`, connectors/client_io.put_until_stopped), and the consumer wakes waiting producers once
per drained batch instead of once per item. Same interface as the `queue.Queue` subset the clients and
the partition use (`put` with timeout -> `queue.Full`, `get_nowait` -> `queue.Empty`, `qsize`).

Weighted items: one item may stand for several frames (a socket read handed over as columns,
`cryptoflow.level_block.DepthRead`). `put_weighted` counts it as its frames, so the cap keeps bounding
frames, not hand-over objects; the consumer gives the extra weight back with `release` once it took the
item. The two counters each have one writer (producer / consumer), so no lock is needed for them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any


class HandoffQueue:
    # the consumer's worker bell (connectors/doorbell.py), rung after every hand-over; None: it polls
    doorbell: Any = None

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._room = threading.Condition(threading.Lock())
        self._waiting = 0
        self._weight_in = 0  # extra weight of weighted items put (written by the producer only)
        self._weight_out = 0  # extra weight the consumer released (written by the consumer only)

    def _load(self) -> int:
        """Items queued, a weighted item counting as its weight (until the consumer releases it)."""
        return len(self._items) + self._weight_in - self._weight_out

    # ------------------------------------------------------------------ producers (client threads)
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Append; when full, wait up to `timeout` for room (None: forever), else raise `queue.Full`."""
        items = self._items
        if self._load() < self.maxsize:
            items.append(item)
            self._ring()
            return
        if self._over_cap(item):
            return
        if not block:
            raise queue.Full
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._room:
            self._waiting += 1
            try:
                # re-checked under the lock after announcing the wait: a drain that ran before the
                # announcement left room, one after it will notify
                while self._load() >= self.maxsize:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise queue.Full
                    self._room.wait(remaining)
                items.append(item)
            finally:
                self._waiting -= 1
        self._ring()

    def extend(self, batch: list[Any]) -> int:
        """Append as many of `batch` (from the first) as fit without waiting; returns how many. One
        deque call for the whole batch when it fits (the common case)."""
        items = self._items
        room = self.maxsize - self._load()
        if room >= len(batch):
            items.extend(batch)
            taken = len(batch)
        elif room <= 0:
            return 0
        else:
            items.extend(batch[:room])
            taken = room
        self._ring()
        return taken

    def put_weighted(self, item: Any, weight: int, timeout: float | None = None) -> bool:
        """Append an item that counts as `weight` items once there is room for all of them (or nothing
        is queued: an item heavier than the cap still goes); False if `timeout` passed first."""
        items = self._items
        if self._load() + weight <= self.maxsize or not items:
            items.append(item)
            self._weight_in += weight - 1
            self._ring()
            return True
        if self._over_cap(item, weight):
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._room:
            self._waiting += 1
            try:
                while self._load() + weight > self.maxsize and items:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._room.wait(remaining)
                items.append(item)
                self._weight_in += weight - 1
            finally:
                self._waiting -= 1
        self._ring()
        return True

    def _ring(self) -> None:
        """After queueing: wake the consumer's worker if it sleeps in its bell."""
        if self.doorbell is not None:
            self.doorbell.ring()

    def _over_cap(self, item: Any, weight: int = 1) -> bool:
        """Queue `item` over the cap when the producer is the consumer's own worker, running the clients'
        loop for it (`connector.client_loop: worker`): waiting for room would wait for itself. The worker
        drains before it runs the loop again, so the excess is at most one loop iteration's reads."""
        bell = self.doorbell
        if bell is None or not bell.consumer_is_here():
            return False
        self._items.append(item)
        self._weight_in += weight - 1
        bell.ring()
        return True

    def release(self, extra: int) -> None:
        """The consumer took weighted items worth `extra` more than their count: room for producers."""
        self._weight_out += extra
        if self._waiting:
            self.wake()

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    # ------------------------------------------------------------------ consumer (source partition)
    def get_nowait(self) -> Any:
        try:
            item = self._items.popleft()
        except IndexError:
            raise queue.Empty from None
        if self._waiting:
            self.wake()
        return item

    def drain(self, limit: int) -> list[Any]:
        """Up to `limit` items, oldest first, and one wake-up for producers waiting for room."""
        items, out = self._items, []
        popleft = items.popleft
        try:
            for _ in range(min(limit, len(items))):
                out.append(popleft())
        except IndexError:  # pragma: no cover - single consumer: len() cannot shrink under us
            pass
        if out and self._waiting:
            self.wake()
        return out

    def wake(self) -> None:
        with self._room:
            self._room.notify_all()

    def qsize(self) -> int:
        return self._load()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return self._load() >= self.maxsize
