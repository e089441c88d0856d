"""Egress manager: shard -> local IP, per-IP connection caps, 429/418 rotation, per-IP connect limiter.

One manager per process, shared by every shard's client thread (all methods are thread-safe). Clients
use a narrow interface: `address_for(shard)` before each connect or REST call, `connect_delay(ip)`
before each (re)connect, `open`/`close` around a WebSocket connection, and `report_throttle(ip, ...)`
when an exchange answers 429/418. An IP that draws `throttle_strikes` of them within
`throttle_window_s` cools down for max(`cooldown_s`, Retry-After) and its shards move to the next IP of
the pool; the exchange's limits are per IP, so moving is the only way to keep collecting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from cryptoflow import metrics
from cryptoflow.config import ShardingConfig

log = logging.getLogger(__name__)

DEFAULT_ROUTE = "default"  # metric/limiter key when sockets are not bound (empty pool)


class EgressExhausted(OSError):
    """Every usable IP is at its connection cap. An OSError (like EADDRNOTAVAIL), so connection code
    that retries socket errors (e.g. a rotation's replacement) treats it as one."""


class _TokenBucket:
    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), now

    def reserve(self, now: float) -> float:
        """Take a token (possibly borrowed from the future) and return how long to wait for it."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


ROTATION_HISTORY = 256  # recent shard moves kept for inspection


class EgressManager:
    def __init__(
        self,
        pool: Iterable[str] = (),
        overrides: dict[int, str] | None = None,
        *,
        max_connections_per_ip: int = 200,
        throttle_strikes: int = 2,
        throttle_window_s: float = 60.0,
        cooldown_s: float = 120.0,
        reconnects_per_s: float = 5.0,
        reconnect_burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = list(dict.fromkeys(pool))
        self.overrides = dict(overrides or {})
        self.max_connections_per_ip = max_connections_per_ip
        self.throttle_strikes, self.throttle_window_s = throttle_strikes, throttle_window_s
        self.cooldown_s = cooldown_s
        self.reconnects_per_s, self.reconnect_burst = reconnects_per_s, reconnect_burst
        self.clock = clock
        self._lock = threading.Lock()
        self._base: dict[int, str] = {}
        self._current: dict[int, str] = {}
        self._connections: defaultdict[str, int] = defaultdict(int)
        self._strikes: defaultdict[str, deque[float]] = defaultdict(deque)
        self._cool_until: dict[str, float] = {}
        self._buckets: dict[str, _TokenBucket] = {}
        # (shard, from, to), for logs and tests; bounded: a long run under 429 storms rotates forever
        self.rotations: deque[tuple[int, str, str]] = deque(maxlen=ROTATION_HISTORY)

    # ------------------------------------------------------------------ assignment
    def assign(self, shards: Iterable[int]) -> None:
        """Round-robin the pool over `shards` in sorted order; overrides win. Deterministic per config."""
        with self._lock:
            i = 0
            for shard in sorted(set(shards)):
                if shard in self.overrides:
                    self._base[shard] = self.overrides[shard]
                elif self.pool:
                    self._base[shard] = self.pool[i % len(self.pool)]
                    i += 1

    def base_address(self, shard: int) -> str | None:
        if shard in self.overrides:
            return self.overrides[shard]
        if shard in self._base:
            return self._base[shard]
        return self.pool[shard % len(self.pool)] if self.pool else None

    def address_for(self, shard: int) -> str | None:
        """The IP the shard should bind to now (None: the OS default route, when nothing is configured).

        Stays on the shard's current IP while it is usable; moves on when that IP cools down or is full.
        When every IP is cooling, returns the one whose cool-down ends first (callers back off anyway).
        """
        with self._lock:
            return self._choose(shard, need_slot=False)

    def open(self, shard: int) -> str | None:
        """Lease a WebSocket connection slot for `shard`; `close(ip)` when the connection ends."""
        with self._lock:
            ip = self._choose(shard, need_slot=True)
            if ip is not None:
                self._connections[ip] += 1
                metrics.EGRESS_CONNECTIONS.labels(ip).set(self._connections[ip])
            return ip

    def close(self, ip: str | None) -> None:
        if ip is None:
            return
        with self._lock:
            self._connections[ip] = max(0, self._connections[ip] - 1)
            metrics.EGRESS_CONNECTIONS.labels(ip).set(self._connections[ip])

    def connections(self, ip: str) -> int:
        with self._lock:
            return self._connections[ip]

    def _usable(self, ip: str, now: float, need_slot: bool) -> bool:
        if self._cool_until.get(ip, 0.0) > now:
            return False
        return not need_slot or self._connections[ip] < self.max_connections_per_ip

    def _choose(self, shard: int, need_slot: bool) -> str | None:
        now = self.clock()
        current = self._current.get(shard) or self.base_address(shard)
        if current is None:
            return None
        if self._usable(current, now, need_slot):
            self._current[shard] = current
            return current
        candidates = self._ring_after(current)
        for ip in candidates:
            if self._usable(ip, now, need_slot):
                self._move(shard, current, ip)
                return ip
        if need_slot and all(self._cool_until.get(ip, 0.0) <= now for ip in [current, *candidates]):
            raise EgressExhausted(
                f"every egress IP is at max_connections_per_ip={self.max_connections_per_ip}"
            )
        soonest = min([current, *candidates], key=lambda ip: self._cool_until.get(ip, 0.0))
        if soonest != current:
            self._move(shard, current, soonest)
        return soonest

    def _ring_after(self, ip: str) -> list[str]:
        if ip not in self.pool:
            return list(self.pool)
        i = self.pool.index(ip)
        return self.pool[i + 1 :] + self.pool[:i]

    def _move(self, shard: int, old: str, new: str) -> None:
        self._current[shard] = new
        self.rotations.append((shard, old, new))
        log.warning("egress: shard %s moves from %s to %s", shard, old, new)

    # ------------------------------------------------------------------ throttling
    def report_throttle(self, ip: str | None, status: int, retry_after_s: float | None = None) -> bool:
        """Record a 429/418 from `ip`; returns True when this puts the IP into cool-down."""
        key = ip or DEFAULT_ROUTE
        metrics.EGRESS_THROTTLED.labels(key, str(status)).inc()
        with self._lock:
            now = self.clock()
            strikes = self._strikes[key]
            strikes.append(now)
            while strikes and strikes[0] < now - self.throttle_window_s:
                strikes.popleft()
            # a 418 is a ban: no point waiting for a second strike
            if len(strikes) < self.throttle_strikes and status != 418:
                return False
            until = now + max(self.cooldown_s, retry_after_s or 0.0)
            already = self._cool_until.get(key, 0.0) > now
            self._cool_until[key] = max(self._cool_until.get(key, 0.0), until)
            strikes.clear()
        if not already:
            metrics.EGRESS_ROTATIONS.labels(key).inc()
            log.warning(
                "egress: %s drew %s (Retry-After %s); cooling down for %.0fs",
                key, status, retry_after_s, until - now,
            )  # fmt: skip
        return not already

    def cooling(self, ip: str | None) -> float:
        """Seconds of cool-down left for `ip` (0 when usable)."""
        with self._lock:
            return max(0.0, self._cool_until.get(ip or DEFAULT_ROUTE, 0.0) - self.clock())

    # ------------------------------------------------------------------ connect rate
    def connect_delay(self, ip: str | None) -> float:
        """Reserve one (re)connect on `ip`'s token bucket (shared by all shards); seconds to wait first."""
        key = ip or DEFAULT_ROUTE
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _TokenBucket(self.reconnects_per_s, self.reconnect_burst, now)
            wait = bucket.reserve(now)
        if wait > 0:
            metrics.RECONNECT_THROTTLE_SECONDS.labels(key).inc(wait)
        return wait


def egress_from_config(cfg: ShardingConfig, shards: Iterable[int], discover: bool = True) -> EgressManager:
    """The process's manager: configured pool (+ IMDS discovery when enabled), round-robin over `shards`."""
    pool = list(cfg.egress_pool)
    if discover and cfg.egress_discovery == "imds":
        from connectors.egress.imds import discover_imds_ips

        try:
            pool += [ip for ip in discover_imds_ips(cfg.imds_url) if ip not in pool]
        except OSError as exc:
            log.error(
                "egress: IMDS discovery at %s failed (%s); using the configured pool only", cfg.imds_url, exc
            )
    manager = EgressManager(
        pool,
        cfg.per_shard_ip_override,
        max_connections_per_ip=cfg.max_connections_per_ip,
        throttle_strikes=cfg.throttle_strikes,
        throttle_window_s=cfg.throttle_window_s,
        cooldown_s=cfg.cooldown_s,
        reconnects_per_s=cfg.reconnects_per_ip_per_s,
        reconnect_burst=cfg.reconnect_burst,
    )
    manager.assign(shards)
    return manager
