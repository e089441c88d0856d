"""Bounded channel with a backpressure policy, between a connector thread and the dataflow.

When the dataflow falls behind, something has to give, and what is right depends on the data:

* `wait`: the producer blocks (the socket's TCP window then pushes back on the exchange); nothing lost,
  but a long stall can make the exchange drop the connection. The default for order-book diffs.
* `drop-oldest`: keep the newest items; each drop is counted (a dropped diff is a gap downstream).
* `sample`: under pressure admit only every `sample_every`-th item (tickers, marks), count the rest.
* `spill`: hand overflow to a spill sink (the on-disk journal) and keep spilling, to preserve order,
  until the reader reports the spill drained (`spill_drained()`); nothing lost, memory stays bounded.

Occupancy above `high_water` (80%) for `sustain_s` raises `cryptoflow_channel_high_water_total` and a
log line once per episode; `cryptoflow_channel_occupancy` is always current. A process-wide watcher
thread (`watch`) re-checks every open channel each second, so a stuck consumer with a silent producer
is still noticed.

Wiring: `connectors/source.py` opens one channel per partition with `open_channel` from the stream's
`ChannelSpec` (`channel_spec(settings, exchange, stream)`: caps and policy from the config's
`channels` section); clients hand items over through `connectors/client_io.put_until_stopped`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from connectors.handoff import HandoffQueue
from connectors.spill import SpillJournal
from cryptoflow import metrics
from cryptoflow.config import ChannelCaps, Settings

log = logging.getLogger(__name__)


class Policy(Enum):
    WAIT = "wait"
    DROP_OLDEST = "drop-oldest"
    SAMPLE = "sample"
    SPILL = "spill"


class Empty(queue.Empty):
    """Nothing to take (a `queue.Empty`, so code written for `queue.Queue` drains a channel unchanged)."""


class HighWater:
    """Occupancy gauge plus the sustained-high-water alert (metric + one log line per episode)."""

    def __init__(
        self, name: str, capacity: int, policy: Policy, high_water: float, sustain_s: float,
        clock: Callable[[], float],
    ) -> None:  # fmt: skip
        self.name, self.capacity, self.policy = name, capacity, policy
        self.high_water, self.sustain_s, self.clock = high_water, sustain_s, clock
        self.gauge = metrics.CHANNEL_OCCUPANCY.labels(name)
        self.episodes = 0
        self._above_since: float | None = None
        self._alerted = False

    def observe(self, depth: int, dropped: int = 0, spilled: int = 0) -> None:
        occupancy = depth / self.capacity
        self.gauge.set(occupancy)
        now = self.clock()
        if occupancy <= self.high_water:
            if self._alerted:
                log.info("channel %s: back below %.0f%% full", self.name, self.high_water * 100)
            self._above_since, self._alerted = None, False
            return
        if self._above_since is None:
            self._above_since = now
        elif not self._alerted and now - self._above_since >= self.sustain_s:
            self._alerted = True
            self.episodes += 1
            metrics.CHANNEL_HIGH_WATER.labels(self.name).inc()
            log.warning(
                "channel %s: above %.0f%% full for %.1fs (policy %s, %d dropped, %d spilled)",
                self.name, self.high_water * 100, now - self._above_since, self.policy.value,
                dropped, spilled,
            )  # fmt: skip


class BoundedChannel:
    # the consumer's worker bell (connectors/doorbell.py), rung after every item queued; None: it polls
    doorbell: Any = None

    def __init__(
        self,
        name: str,
        capacity: int,
        policy: Policy | str = Policy.WAIT,
        *,
        sample_every: int = 10,
        spill: Callable[[Any], None] | None = None,
        unspill: Callable[[], Any | None] | None = None,
        high_water: float = 0.8,
        sustain_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or sample_every < 1 or not 0 < high_water <= 1:
            raise ValueError("capacity >= 1, sample_every >= 1 and 0 < high_water <= 1 are required")
        self.policy = Policy(policy)
        if self.policy is Policy.SPILL and spill is None:
            raise ValueError("the spill policy needs a spill sink (the journal)")
        self.name, self.capacity, self.sample_every = name, capacity, sample_every
        self.spill, self.high_water, self.sustain_s, self.clock = spill, high_water, sustain_s, clock
        # with `unspill` (the spill's read side) the channel reads its spill back itself once memory is
        # empty, and leaves spilling when it comes back empty; without it the reader calls spill_drained
        self.unspill = unspill
        self.unspilled = 0  # items (control ones too) read back from the spill
        self._on_disk = 0
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self.spilled = 0
        self.spilling = False
        self._seen_full = 0
        self._high_water = HighWater(name, capacity, self.policy, high_water, sustain_s, clock)

    # ------------------------------------------------------------------ producer
    def put(self, item: Any, timeout: float | None = None, *, control: bool = False) -> bool:
        """Offer an item; True if it is now in the channel or the spill, False if the policy dropped it.

        `wait` blocks up to `timeout` (forever if None) and returns False if still full then.
        `control=True` (end-of-stream markers) bypasses the policy: never dropped or blocked (while the
        channel spills it goes to the spill too, behind the items it must not overtake).
        An item that went in rings the consumer's bell.
        """
        queued = self._put(item, timeout, control)
        if queued and self.doorbell is not None:
            self.doorbell.ring()
        return queued

    def _put(self, item: Any, timeout: float | None, control: bool) -> bool:
        """`put` under the channel's lock."""
        with self._cond:
            if control and self.spilling:  # behind the spilled items, or END would overtake them
                self.spill(item)  # type: ignore[misc]
                self._on_disk += 1
                self._cond.notify_all()
                return True
            if control:
                self._items.append(item)
                self._watch()
                self._cond.notify_all()
                return True
            full = len(self._items) >= self.capacity
            if self.policy is Policy.SPILL and (full or self.spilling):
                self.spilling = True
                self.spilled += 1
                metrics.BACKPRESSURE_DROPS.labels(self.name, "spill").inc()
                self.spill(item)  # type: ignore[misc]
                self._on_disk += 1
                return True
            if full and self.policy is Policy.WAIT:
                # the consumer's own worker, running the clients' loop, would wait for itself: over the cap
                bell = self.doorbell
                if (bell is None or not bell.consumer_is_here()) and not self._cond.wait_for(
                    lambda: len(self._items) < self.capacity, timeout
                ):
                    return False
            elif full and self.policy is Policy.SAMPLE:
                self._seen_full += 1
                if self._seen_full % self.sample_every:
                    self._drop("sample")
                    return False
                self._items.popleft()  # the admitted sample replaces the oldest item
                self._drop("sample")
            elif full:  # drop-oldest
                self._items.popleft()
                self._drop("drop-oldest")
            if not full:
                self._seen_full = 0
            self._items.append(item)
            self._watch()
            self._cond.notify_all()
            return True

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        metrics.BACKPRESSURE_DROPS.labels(self.name, reason).inc()

    def spill_drained(self) -> None:
        """The reader caught up with the spill: new items may go to memory again."""
        with self._cond:
            self.spilling = False

    # ------------------------------------------------------------------ consumer
    def get(self, timeout: float | None = None) -> Any:
        with self._cond:
            if not self._cond.wait_for(self._available, timeout):
                raise Empty()
            return self._take()

    def get_nowait(self) -> Any:
        with self._cond:
            return self._take()

    def empty(self) -> bool:
        """Nothing to take, in memory or (with a self-read spill) on disk."""
        return not self._available()

    def _available(self) -> bool:
        return bool(self._items) or (self.spilling and self.unspill is not None)

    def _take(self) -> Any:
        if not self._items:
            # memory holds only items older than the spill: read the spill once memory is empty
            item = self.unspill() if self.spilling and self.unspill is not None else None
            if item is None:
                if self.unspill is not None:
                    self.spilling = False  # drained: new items may go to memory again
                raise Empty()
            self.unspilled += 1
            self._on_disk -= 1
            return item
        item = self._items.popleft()
        self._watch()
        self._cond.notify_all()
        return item

    def qsize(self) -> int:
        """Items waiting: in memory plus, with a self-read spill, those still on disk."""
        return len(self._items) + (self._on_disk if self.unspill is not None else 0)

    def occupancy(self) -> float:
        return len(self._items) / self.capacity

    # ------------------------------------------------------------------ high-water watch
    def _watch(self) -> None:
        self._high_water.observe(len(self._items), self.dropped, self.spilled)

    @property
    def high_water_episodes(self) -> int:
        return self._high_water.episodes

    def check_high_water(self) -> None:
        """Re-evaluate the watch without traffic (a stuck consumer and a silent producer)."""
        with self._cond:
            self._watch()


class WaitChannel(HandoffQueue):
    """The `wait` policy (the default, and the only one book diffs may use) on the lock-free hand-off
    queue: no lock, condition or metric on the per-frame path. The occupancy gauge and the high-water
    alert are updated by the process-wide watcher each second and whenever a producer finds the channel
    full (it is about to block anyway)."""

    policy = Policy.WAIT
    dropped = 0
    spilled = 0

    def __init__(
        self, name: str, capacity: int, *, high_water: float = 0.8, sustain_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        super().__init__(capacity)
        self.name, self.capacity = name, capacity
        self._high_water = HighWater(name, capacity, Policy.WAIT, high_water, sustain_s, clock)

    def put(self, item: Any, timeout: float | None = None, *, control: bool = False) -> bool:  # type: ignore[override]
        """True once `item` is queued; False if still full after `timeout`. Control items never wait."""
        if control:
            self._items.append(item)
            self._ring()
            return True
        if self._load() >= self.maxsize:
            self.check_high_water()
        try:
            HandoffQueue.put(self, item, True, timeout)
        except queue.Full:
            return False
        return True

    def put_many(self, items: list[Any]) -> int:
        """Queue as many of `items` (from the first) as fit now, without waiting; how many were taken.
        The caller waits for room for the rest (`put`)."""
        return HandoffQueue.extend(self, items)

    def get(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return self.get_nowait()
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise Empty() from None
                time.sleep(0.001)

    def occupancy(self) -> float:
        return self._load() / self.capacity

    @property
    def high_water_episodes(self) -> int:
        return self._high_water.episodes

    def check_high_water(self) -> None:
        self._high_water.observe(self._load())


Channel = BoundedChannel | WaitChannel


def channel_from_caps(
    name: str,
    caps: ChannelCaps,
    spill: Callable[[Any], None] | None = None,
    unspill: Callable[[], Any | None] | None = None,
) -> BoundedChannel:
    """The raw channel of one partition as configured for its exchange and stream (`channels` section)."""
    return BoundedChannel(
        name, caps.raw_cap, caps.policy, sample_every=caps.sample_every, spill=spill, unspill=unspill,
        sustain_s=caps.high_water_sustain_s,
    )  # fmt: skip


@dataclass(frozen=True)
class ChannelSpec:
    """What a source needs to open its partitions' channels: the configured caps and the spill root."""

    caps: ChannelCaps
    spill_dir: Path


def channel_spec(settings: Settings, exchange: str, stream: str) -> ChannelSpec:
    return ChannelSpec(settings.channels.caps_for(exchange, stream), Path(settings.channels.spill_dir))


def open_channel(spec: ChannelSpec | int, name: str) -> Channel:
    """A partition's channel, watched for sustained high water. A bare int is a `wait` channel of that
    capacity (sources and benchmarks that configure only a size). `spill` overflows to journal segments
    under `<spill_dir>/<name>`, read back by the channel itself."""
    channel: Channel
    if isinstance(spec, int):
        channel = WaitChannel(name, spec)
    elif spec.caps.policy == Policy.WAIT.value:
        channel = WaitChannel(name, spec.caps.raw_cap, sustain_s=spec.caps.high_water_sustain_s)
    elif spec.caps.policy == Policy.SPILL.value:
        store = SpillJournal(spec.spill_dir / name, name)
        channel = channel_from_caps(name, spec.caps, spill=store.append, unspill=store.take)
    else:
        channel = channel_from_caps(name, spec.caps)
    watch(channel)
    return channel


class _Watcher:
    """One daemon thread per process re-checking every open channel's high water once a second."""

    def __init__(self, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self.channels: weakref.WeakSet[Channel] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, channel: Channel) -> None:
        with self._lock:
            self.channels.add(channel)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="channel-high-water", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.period_s)
            with self._lock:
                channels = list(self.channels)
            for channel in channels:
                channel.check_high_water()


_WATCHER = _Watcher()


def watch(channel: Channel) -> None:
    """Have the process-wide watcher re-check `channel`'s high water every second until it is gone."""
    _WATCHER.add(channel)
