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

`connector.client_loop: worker` (run to completion): the same one loop, but run by the Bytewax worker
itself whenever it has nothing else to do, instead of by a thread of its own. An idle worker's partition
runs the loop (`drive`) until a client hands frames over (the hand-over stops it, connectors/doorbell.py)
or `idle_poll_ms` passed, then processes them at once: no second hot thread competing for the GIL and
the cores, no cross-thread wake-up per socket read. Frames that arrive while the worker is busy wait in
the kernel's socket buffer (exchange -> ingest) rather than in the hand-over queue (ingest -> normalized).
The loop's own thread stays as the fallback: when no worker ran the loop for `TAKEOVER_S` (a long batch,
an epoch's end, Bytewax not polling its input under backpressure, a partition closing its clients) it
runs the loop as in `shared` mode, and hands it back when a worker asks (`drive` returning False).
Clients' blocking waits must never block the worker that drives them (it is the one that would make
room): a hand-over that would wait for room goes in over the cap instead (connectors/handoff.py), and the
worker does not drive again until it drained it.

Clients' tasks are owned: a task records the client whose `run_owned` coroutine created it (directly or
through its children), so a client that ends cancels exactly its own leftover tasks, as `asyncio.run` did
for a client's private loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from cryptoflow import metrics

REST_THREADS = 32
# worker mode: the loop's thread runs the loop once no worker did for this long. Not shorter: while a
# worker's long round runs, the thread's reads only compete with it for the GIL (parsing needs it), and
# at 5 ms a round slowed by that competition made the next one longer (docs/benchmarks.md, round 14)
TAKEOVER_S = 0.02
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
    """One asyncio loop and a daemon thread that runs it: always (`shared`), or in `driven` mode only
    while no Bytewax worker runs it (`drive`). `shared(driven)` is the process's one instance of each."""

    _shared: dict[bool, ClientLoop] = {}
    _guard = threading.Lock()

    def __init__(self, name: str = "ws-clients", driven: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_task_factory(_owned_task)
        # `asyncio.to_thread` (REST calls) of every client runs here: as many threads as a few clients'
        # private loops had, not the default min(32, cores + 4) for all of them together
        self.loop.set_default_executor(ThreadPoolExecutor(REST_THREADS, thread_name_prefix=f"{name}-rest"))
        self.driven = driven
        self._runner = threading.Lock()  # held by whichever thread runs the loop now (driven mode)
        self._driver: int | None = None  # the worker thread running it, if one does
        self._last_driven = time.monotonic()
        self._wanted = False  # a worker asked the loop's thread to hand the loop back
        self.takeovers = 0  # times the loop's thread took the loop over from idle workers
        self.thread = threading.Thread(target=self._fallback if driven else self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def shared(cls, driven: bool = False) -> ClientLoop:
        with cls._guard:
            current = cls._shared.get(driven)
            if current is None or not current.thread.is_alive():
                current = cls._shared[driven] = cls("ws-clients-driven" if driven else "ws-clients", driven)
            return current

    # ------------------------------------------------------------------ driven mode
    def _run_for(self, seconds: float) -> None:
        """Run the loop here until something stops it or `seconds` passed (the caller holds `_runner`)."""
        timer = self.loop.call_later(seconds, self.loop.stop)
        try:
            self.loop.run_forever()
        finally:
            timer.cancel()

    def _fallback(self) -> None:
        """The loop's thread in driven mode: run the loop whenever no worker did for `TAKEOVER_S`, in
        slices, until a worker asks for it back."""
        asyncio.set_event_loop(self.loop)
        while True:
            time.sleep(TAKEOVER_S)
            if time.monotonic() - self._last_driven < TAKEOVER_S or not self._runner.acquire(blocking=False):
                continue
            try:
                self.takeovers += 1
                metrics.CLIENT_LOOP_TAKEOVERS.inc()
                self._wanted = False
                while not self._wanted:
                    self._run_for(TAKEOVER_S)
            finally:
                self._last_driven = time.monotonic()
                self._runner.release()

    def drive(self, seconds: float, ready: Callable[[], bool] | None = None) -> bool:
        """Worker thread: run the loop here for up to `seconds`, or until a hand-over to this worker stops
        it (`stop_if_driven_here`). If the loop's thread runs it, ask it to let go (it does after its
        current iteration) and wait up to `seconds` for it; False if that did not happen, and at once if
        another worker runs it (the caller sleeps in its bell, which that worker's hand-overs ring).
        `ready`: the worker already has items (handed over before the thread let go), so return without
        running the loop."""
        if not self._runner.acquire(blocking=False):
            if self._driver is not None:  # another worker runs it: its hand-overs to us ring our bell
                return False
            if not self._wanted:
                self._wanted = True
                self.loop.call_soon_threadsafe(self.loop.stop)
            if not self._runner.acquire(timeout=seconds):
                return False
        try:
            if ready is not None and ready():
                return True
            self._driver = threading.get_ident()
            self._run_for(seconds)
        finally:
            self._driver = None
            self._last_driven = time.monotonic()
            self._runner.release()
        return True

    def stop_if_driven_here(self) -> None:
        """A client handed frames to the worker that runs the loop: return to it after this iteration."""
        if self._driver == threading.get_ident():
            self.loop.stop()

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
