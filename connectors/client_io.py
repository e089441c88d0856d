"""The two waits every client thread needs, in one place: hand an item to the dataflow's bounded queue
(backpressure policy `wait`), and sleep in small steps so a stop request ends the wait at once."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any


def put_until_stopped(out: queue.Queue, item: Any, stop: threading.Event) -> None:
    """Block until the queue takes `item` (the dataflow drains it), or the client is stopped."""
    while True:
        try:
            out.put(item, timeout=0.5)
            return
        except queue.Full:
            if stop.is_set():
                return


async def sleep_unless_stopped(seconds: float, stop: threading.Event) -> None:
    """`asyncio.sleep` that returns early (within 0.1 s) once `stop` is set."""
    end = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < end:
        await asyncio.sleep(min(0.1, end - time.monotonic()))
