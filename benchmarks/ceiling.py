"""The ceilings: what the same frames cost when we do (almost) nothing with them.

`read`: iterate the in-memory frames and touch each one's length (the loop itself; the frames are
already decoded `str`, as a WebSocket library hands text frames over). `orjson`: `orjson.loads` of
every frame, result discarded. Both are best-of-N, since they are short and the machine is shared.
"""

from __future__ import annotations

import time

import orjson


def time_read(frames: list[str]) -> float:
    started = time.perf_counter()
    total = 0
    for frame in frames:
        total += len(frame)
    elapsed = time.perf_counter() - started
    if total < 0:  # keeps the loop from being trivially dead
        raise AssertionError
    return elapsed


def time_orjson(frames: list[str]) -> float:
    loads = orjson.loads
    started = time.perf_counter()
    for frame in frames:
        loads(frame)
    return time.perf_counter() - started


def best_of(fn, frames: list[str], repeats: int) -> float:
    return min(fn(frames) for _ in range(repeats))
