"""Fault injection for the exchange simulator: what exchanges do to collectors.

A `FaultPlan` says how often things go wrong; the `FaultInjector` rolls the dice (seeded, so a failing
chaos run can be replayed) and keeps per-IP throttle/ban state. Faults:

* disconnects: the server drops a WebSocket mid-stream; in continuous mode the frames published while
  the client is away (`skip_on_disconnect`) are lost to it, a real gap the client must resync over;
* stalls: the server stops sending for `stall_s` (frames queue up and then arrive at once);
* bursts: the next `burst_frames` frames go out `burst_factor` (10x) faster than recorded;
* 429 with Retry-After on REST and on the WebSocket handshake, at random or for chosen IPs, escalating
  to 418 bans after `ban_after_429s` of them (Binance's rule), and explicit per-IP bans.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum


class FrameFault(Enum):
    DISCONNECT = "disconnect"
    STALL = "stall"
    BURST = "burst"


@dataclass
class FaultPlan:
    seed: int = 0
    disconnect_prob: float = 0.0  # per frame sent
    skip_on_disconnect: int = 0  # frames the dropped client misses (continuous mode)
    stall_prob: float = 0.0
    stall_s: float = 0.5
    burst_prob: float = 0.0
    burst_frames: int = 50
    burst_factor: float = 10.0
    connect_429_prob: float = 0.0  # per WebSocket handshake
    rest_429_prob: float = 0.0  # per REST request
    retry_after_s: int = 1
    ban_after_429s: int = 0  # 0: never escalate to 418
    ban_s: float = 120.0
    throttled_ips: set[str] = field(default_factory=set)  # every request from these draws 429
    banned_ips: set[str] = field(default_factory=set)  # 418 until unbanned


class FaultInjector:
    """Thread-safe: tests change throttles and bans from their own thread while the server runs."""

    def __init__(self, plan: FaultPlan, clock=time.monotonic) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.clock = clock
        self.counts: Counter = Counter()  # fault kind -> times injected
        self.throttled_by_ip: Counter = Counter()  # ip -> 429s answered
        self.banned_by_ip: Counter = Counter()  # ip -> 418s answered
        self._ban_until: dict[str, float] = {}
        self._throttled = set(plan.throttled_ips)
        self._lock = threading.Lock()
        for ip in plan.banned_ips:
            self._ban_until[ip] = float("inf")

    # ------------------------------------------------------------------ controls (any thread)
    def throttle(self, ip: str, on: bool = True) -> None:
        with self._lock:
            (self._throttled.add if on else self._throttled.discard)(ip)

    def ban(self, ip: str, seconds: float | None = None) -> None:
        with self._lock:
            self._ban_until[ip] = self.clock() + seconds if seconds is not None else float("inf")

    def unban(self, ip: str) -> None:
        with self._lock:
            self._ban_until.pop(ip, None)

    def is_banned(self, ip: str) -> bool:
        with self._lock:
            return self._ban_until.get(ip, 0.0) > self.clock()

    # ------------------------------------------------------------------ decisions (server loop)
    def refuse(self, ip: str, kind: str) -> tuple[int, int] | None:
        """(status, Retry-After seconds) to refuse a request from `ip` with, or None to serve it."""
        with self._lock:
            now = self.clock()
            until = self._ban_until.get(ip, 0.0)
            if until > now:
                self.banned_by_ip[ip] += 1
                self.counts[f"{kind}_418"] += 1
                left = self.plan.ban_s if until == float("inf") else until - now
                return 418, max(1, int(left + 0.999))
            prob = self.plan.connect_429_prob if kind == "ws" else self.plan.rest_429_prob
            if ip in self._throttled or (prob > 0 and self.rng.random() < prob):
                self.throttled_by_ip[ip] += 1
                self.counts[f"{kind}_429"] += 1
                n = self.plan.ban_after_429s
                if n and self.throttled_by_ip[ip] % n == 0:
                    self._ban_until[ip] = now + self.plan.ban_s
                    self.counts["bans"] += 1
                return 429, self.plan.retry_after_s
            return None

    def frame_fault(self) -> FrameFault | None:
        plan, r = self.plan, self.rng.random()
        with self._lock:
            for fault, prob in (
                (FrameFault.DISCONNECT, plan.disconnect_prob),
                (FrameFault.STALL, plan.stall_prob),
                (FrameFault.BURST, plan.burst_prob),
            ):
                if r < prob:
                    self.counts[fault.value] += 1
                    return fault
                r -= prob
        return None
