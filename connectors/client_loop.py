"""One event-loop thread for every WebSocket client of a process (`connector.client_loop: shared`).

Why: with one thread and one asyncio loop per client, a process with four shards had four threads
waking for their socket reads, each re-taking the GIL from the Bytewax worker and from each other. At
10k Kraken frames/s over 4 connections the four client threads took 45-55 % of a core; one shared
loop takes 35-40 % for the same sockets, and the p90 of ingest -> normalized went from 6-17 ms to
2-3 ms (docs/benchmarks.md, "Round 10"). A wake-up of the one loop handles every socket that is ready.

What a client loses by sharing: its blocking waits (a full `wait` channel, a journal fsync) hold up the
other clients of the process too, while their frames wait in the kernel's socket buffers; and every
client's `asyncio.to_thread` (REST calls) shares this loop's executor (`REST_THREADS`), so nothing may
park an executor thread waiting for another client (the exchangeInfo cache lock once did: with more
waiting shards than threads the holder's own REST call never started; `connectors/binance/client.py`).
`connector.client_loop: per_client` gives every client its own thread and loop.

Clients' tasks are owned: a task records the client whose `run_owned` coroutine created it (directly or
through its children), so a client that ends cancels exactly its own leftover tasks, as `asyncio.run` did
for a client's private loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

REST_THREADS = 32
_OWNER: contextvars.ContextVar[Any] = contextvars.ContextVar("cryptoflow_client_owner", default=None)
_TASKS: dict[Any, set[asyncio.Task]] = {}


def _owned_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine, context: contextvars.Context | None = None
) -> asyncio.Task:
    """Task factory: a task created while a client runs belongs to that client."""
    task = asyncio.Task(coro, loop=loop, context=context)
    owner = (context or contextvars.copy_context()).get(_OWNER)
    if owner is not None:
        tasks = _TASKS.setdefault(owner, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    return task


class ClientLoop:
    """A daemon thread running one asyncio loop; `shared()` is the process's one instance."""

    _shared: ClientLoop | None = None
    _guard = threading.Lock()

    def __init__(self, name: str = "ws-clients") -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_task_factory(_owned_task)
        # `asyncio.to_thread` (REST calls) of every client runs here: as many threads as a few clients'
        # private loops had, not the default min(32, cores + 4) for all of them together
        self.loop.set_default_executor(ThreadPoolExecutor(REST_THREADS, thread_name_prefix=f"{name}-rest"))
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def shared(cls) -> ClientLoop:
        with cls._guard:
            if cls._shared is None or not cls._shared.thread.is_alive():
                cls._shared = cls()
            return cls._shared

    def submit(self, owner: Any, coro: Coroutine) -> Future:
        """Run `coro` on this loop as `owner`'s main coroutine (see `run_owned`)."""
        return asyncio.run_coroutine_threadsafe(run_owned(owner, coro), self.loop)


async def run_owned(owner: Any, coro: Coroutine) -> Any:
    """Await `coro` with `owner` as the owner of every task it creates; when it ends (returns, raises or
    is cancelled) cancel and await the owner's tasks still running."""
    _OWNER.set(owner)  # this task's own context: its children copy it
    try:
        return await coro
    finally:
        current = asyncio.current_task()
        leftovers = [t for t in _TASKS.pop(owner, ()) if t is not current and not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)
