"""Per-IP budgets for connection attempts and outbound messages, shared by every client thread in the
process (exchange-protocols.md §7: budget connects and share the budget across all shards on the host).

A `Budget` is a sliding-window counter: at most `limit` events per `window_s`; `acquire` waits (in the
caller's asyncio loop) until the oldest event leaves the window. Thread-safe because each shard's client
runs its own loop in its own thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

from cryptoflow import metrics


class Budget:
    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1:
            raise ValueError("a budget allows at least one event per window")
        self.limit, self.window_s = limit, window_s
        self._events: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self, now: float | None = None) -> float:
        """Take a slot and return 0, or return the seconds to wait before one frees up."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events
            while events and events[0] <= now - self.window_s:
                events.popleft()
            if len(events) < self.limit:
                events.append(now)
                return 0.0
            return events[0] + self.window_s - now

    async def acquire(self, exchange: str, what: str) -> None:
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return
            metrics.RATE_LIMITED.labels(exchange, what).inc()
            await asyncio.sleep(min(wait, 1.0))


_budgets: dict[tuple[str, str, str], Budget] = {}
_registry_lock = threading.Lock()


def budget(exchange: str, what: str, ip: str | None, limit: int, window_s: float) -> Budget:
    """The process-wide budget of `what` (connects / messages) for `exchange` from egress `ip`."""
    key = (exchange, what, ip or "default")
    with _registry_lock:
        found = _budgets.get(key)
        if found is None or (found.limit, found.window_s) != (limit, window_s):
            found = _budgets[key] = Budget(limit, window_s)
        return found
