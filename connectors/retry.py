"""Retry policy shared by every connector I/O loop: exponential backoff with full jitter and a circuit
breaker.

Full jitter (sleep uniform(0, min(cap, base * 2**n))) spreads thousands of shards that lost their
connections at the same instant, so one exchange hiccup never turns into a synchronised reconnect
storm. The breaker stops hammering an endpoint that keeps failing: after `failure_threshold` straight
failures it opens for `reset_timeout_s`, then lets one probe through (half-open); a success closes it.
Used by the WebSocket client's reconnect and REST loops; written to be reused by the S3/catalog sink.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from enum import Enum

from cryptoflow import metrics


class Backoff:
    """Exponential backoff with full jitter; `reset()` after a success."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        multiplier: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial_s <= 0 or max_s < initial_s or multiplier < 1:
            raise ValueError("need 0 < initial_s <= max_s and multiplier >= 1")
        self.initial_s, self.max_s, self.multiplier = initial_s, max_s, multiplier
        self.rng = rng or random.Random()
        self.attempt = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.max_s, self.initial_s * self.multiplier**self.attempt)

    def next_delay(self, at_least: float = 0.0) -> float:
        """The next delay: uniform(0, ceiling), raised to `at_least` (e.g. a server's Retry-After)."""
        delay = self.rng.uniform(0.0, self.ceiling())
        if self.ceiling() < self.max_s:
            self.attempt += 1
        return max(delay, at_least)

    def reset(self) -> None:
        self.attempt = 0


class BreakerState(Enum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitOpen(Exception):
    def __init__(self, name: str, retry_in_s: float) -> None:
        super().__init__(f"circuit {name} is open; next probe in {retry_in_s:.1f}s")
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    """Thread-safe closed -> open -> half-open breaker; its state is exported as a gauge."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ValueError("failure_threshold >= 1 and reset_timeout_s > 0 are required")
        self.name, self.failure_threshold, self.reset_timeout_s = name, failure_threshold, reset_timeout_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probe_out = False
        self._lock = threading.Lock()
        self._export()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self.opened_at >= self.reset_timeout_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_in(self) -> float:
        """Seconds until a call may be tried (0 when closed or half-open)."""
        with self._lock:
            if self.opened_at is None:
                return 0.0
            return max(0.0, self.opened_at + self.reset_timeout_s - self.clock())

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one probe at a time is let through."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._probe_out:
                self._probe_out = True
                return True
            return False

    def check(self) -> None:
        """`allow()` or raise `CircuitOpen`."""
        if not self.allow():
            raise CircuitOpen(self.name, max(self.retry_in(), 0.1))

    def record_success(self) -> None:
        with self._lock:
            self.failures, self.opened_at, self._probe_out = 0, None, False
        self._export()

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            half_open = self._state() is BreakerState.HALF_OPEN
            if half_open or self.failures >= self.failure_threshold:
                if self.opened_at is None or half_open:
                    metrics.BREAKER_OPENS.labels(self.name).inc()
                self.opened_at = self.clock()
            self._probe_out = False
        self._export()

    def _export(self) -> None:
        metrics.BREAKER_STATE.labels(self.name).set(self.state.value)
