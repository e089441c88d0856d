"""The shared client loop (`connectors/client_loop.py`, the default): every client of a process on one
thread, a crash or an end stays the client's own, and each client's leftover tasks end with it;
`per_client` keeps a thread per client."""

from __future__ import annotations

import asyncio
import queue
import threading

import pytest

from connectors.client_loop import ClientLoop
from connectors.signals import END
from connectors.ws_client import WsClient
from cryptoflow.config import ConnectorConfig

SHARED = ConnectorConfig(client_loop="shared")


class _Client(WsClient):
    """Puts its thread's name, starts a helper task that never ends on its own, then waits for stop
    (or raises, or returns at once)."""

    exchange = "test"

    def __init__(self, connector: ConnectorConfig, out: queue.Queue, mode: str = "wait") -> None:
        super().__init__(connector, 0, out)
        self.mode = mode
        self.helper_cancelled = threading.Event()
        self.helper_started = threading.Event()

    async def _helper(self) -> None:
        self.helper_started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.helper_cancelled.set()
            raise

    async def _main(self) -> None:
        self._put(threading.current_thread().name)
        asyncio.get_running_loop().create_task(self._helper())  # left running on purpose
        await asyncio.sleep(0)
        if self.mode == "crash":
            raise RuntimeError("boom")
        if self.mode == "wait":
            while not self._stop.is_set():
                await asyncio.sleep(0.01)


def _items(q: queue.Queue) -> list:
    out = []
    while True:
        try:
            out.append(q.get(timeout=5))
        except queue.Empty:
            return out
        if out[-1] is END:
            return out


def test_shared_clients_run_on_one_thread():
    q1, q2 = queue.Queue(), queue.Queue()
    a, b = _Client(SHARED, q1), _Client(SHARED, q2)
    a.start()
    b.start()
    assert q1.get(timeout=5) == q2.get(timeout=5) == ClientLoop.shared().thread.name
    assert a._thread is b._thread is ClientLoop.shared().thread
    a.stop()
    b.stop()
    assert a.finished.is_set() and b.finished.is_set()
    assert q1.get(timeout=5) is END and q2.get(timeout=5) is END


def test_a_crash_ends_only_that_client_and_cancels_only_its_tasks():
    q1, q2 = queue.Queue(), queue.Queue()
    crashing, running = _Client(SHARED, q1, "crash"), _Client(SHARED, q2)
    running.start()
    assert running.helper_started.wait(5)
    crashing.start()
    assert _items(q1)[-1] is END and crashing.finished.wait(5)
    assert crashing.helper_cancelled.wait(5)  # its leftover task ended with it, as under asyncio.run
    assert not running.finished.is_set() and not running.helper_cancelled.is_set()
    running.stop()
    assert running.finished.is_set() and running.helper_cancelled.wait(5)


def test_a_client_that_returns_cancels_its_leftover_tasks():
    q = queue.Queue()
    client = _Client(SHARED, q, "return")
    client.start()
    assert client.finished.wait(5) and client.helper_cancelled.wait(5)
    assert _items(q)[-1] is END


def test_the_worker_driven_loop_is_the_default():
    assert ConnectorConfig().client_loop == "worker"


@pytest.mark.parametrize("mode", ["wait", "crash"])
def test_per_client_runs_each_client_on_its_own_thread(mode):
    q = queue.Queue()
    client = _Client(ConnectorConfig(client_loop="per_client"), q, mode)
    client.start()
    name = q.get(timeout=5)
    assert name == client._label != ClientLoop.shared().thread.name
    client.stop()
    assert client.finished.is_set() and client.helper_cancelled.wait(5)
    assert _items(q)[-1] is END


def test_many_binance_shards_on_the_shared_loop_fetch_exchange_info_without_deadlock(monkeypatch):
    """More shards than a loop's executor threads wait for the one exchangeInfo call of the process: a
    waiter must not park an executor thread on the cache's lock, or the holder's REST call (itself an
    executor job) never starts (the ticks flow hung this way on the shared loop)."""
    import time as _time
    from concurrent.futures import ThreadPoolExecutor

    from connectors.binance import client as binance
    from cryptoflow.config import Settings

    monkeypatch.setattr(binance, "INSTRUMENTS", binance.InstrumentCache())
    calls = []

    async def slow_get(self, url, what, timeout_s):
        calls.append(url)
        await asyncio.to_thread(_time.sleep, 0.2)  # the REST call: an executor job, like `_get`'s
        return b"{}"

    monkeypatch.setattr(binance.BinanceClient, "_get", slow_get)
    cfg = Settings().exchanges.binance.spot
    clients = [
        binance.BinanceClient("spot", cfg, SHARED, ["BTCUSDT"], {"depth"}, shard, queue.Queue())
        for shard in range(12)
    ]
    loop = ClientLoop("test-loop")
    loop.loop.set_default_executor(ThreadPoolExecutor(4))  # fewer threads than waiting shards

    async def all_fetch():
        return await asyncio.gather(*(c._instruments_body("exchangeInfo", 60.0) for c in clients))

    bodies = asyncio.run_coroutine_threadsafe(all_fetch(), loop.loop).result(timeout=20)
    assert bodies == [b"{}"] * 12 and len(calls) == 1  # one REST call served every shard
    loop.loop.call_soon_threadsafe(loop.loop.stop)
