"""The two waits every client thread needs, in one place: hand an item to the dataflow's bounded channel
(under its backpressure policy, connectors/backpressure.py), and sleep in small steps so a stop request ends the wait at once."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any

from connectors.backpressure import BoundedChannel, Channel, Policy, WaitChannel
from cryptoflow.model import RawEvent


def put_until_stopped(out: Channel | queue.Queue, item: Any, stop: threading.Event) -> None:
    """Hand `item` to the partition's channel under its backpressure policy: `wait` blocks until the
    dataflow makes room (or the client is stopped), the drop policies may discard it (counted by the
    channel), `spill` writes it to disk. Control items (END, anything not a `RawEvent`) bypass the policy.
    A plain `queue.Queue` (tests, tools) is always waited on."""
    if isinstance(out, (BoundedChannel, WaitChannel)):
        control = not isinstance(item, RawEvent)
        while not out.put(item, timeout=0.5, control=control):
            if out.policy is not Policy.WAIT or stop.is_set():
                return  # dropped by the policy (counted there), or stopped while waiting
        return
    while True:
        try:
            out.put(item, timeout=0.5)
            return
        except queue.Full:
            if stop.is_set():
                return


def put_all_until_stopped(out: Channel | queue.Queue, items: list[Any], stop: threading.Event) -> None:
    """Hand a batch of events over in order. On a `wait` channel the part that fits goes in with one
    `extend` (no per-item call); the rest, and every item on other channels, goes through
    `put_until_stopped` one by one, so the drop policies still decide and count per item."""
    if isinstance(out, WaitChannel):
        taken = out.put_many(items)
        if taken == len(items):
            return
        items = items[taken:]
    for item in items:
        put_until_stopped(out, item, stop)
        if stop.is_set() and isinstance(out, WaitChannel) and out.full():
            return  # stopped while waiting for room: the rest would wait in vain too


async def sleep_unless_stopped(seconds: float, stop: threading.Event) -> None:
    """`asyncio.sleep` that returns early (within 0.1 s) once `stop` is set."""
    end = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < end:
        await asyncio.sleep(min(0.1, end - time.monotonic()))
