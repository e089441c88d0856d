"""`connector.client_loop: worker` (connectors/client_loop.py): the Bytewax worker runs the clients' loop
while idle, the loop's own thread takes over when no worker does, a worker never waits for room in its
own channel, and a client stopped from inside its loop does not wait for itself."""

from __future__ import annotations

import asyncio
import threading
import time

from connectors import doorbell
from connectors.backpressure import WaitChannel
from connectors.client_io import put_until_stopped
from connectors.client_loop import ClientLoop
from connectors.signals import END
from connectors.ws_client import WsClient
from cryptoflow.config import ConnectorConfig
from cryptoflow.model import Kind, RawEvent

WORKER = ConnectorConfig(client_loop="worker")
PATIENCE_S = 10.0  # bounds for waits that end at once when the code is right


def _event(tag: int) -> RawEvent:
    return RawEvent("test", "spot", "BTC-USD", "BTCUSD", Kind.DEPTH_DIFF, 0, 0, 0, -1, tag)


class _Ticker(WsClient):
    """Every 5 ms, hands over an event whose payload is the id of the thread that ran the client."""

    exchange = "test"

    def __init__(self, out, burst: int = 1) -> None:
        super().__init__(WORKER, 0, out)
        self.burst = burst

    async def _main(self) -> None:
        while not self._stop.is_set():
            for _ in range(self.burst):
                put_until_stopped(self.out, _event(threading.get_ident()), self._stop)
            await asyncio.sleep(0.005)


def _drive_until(bell: doorbell.Doorbell, channel: WaitChannel, enough, deadline_s: float = PATIENCE_S):
    """Be the worker: sleep in the bell (driving the clients' loop) and drain, until `enough(items)`."""
    items: list = []
    part = object()
    end = time.monotonic() + deadline_s
    while not enough(items) and time.monotonic() < end:
        bell.wait(part, 0.05)
        items += channel.drain(100)
    return items


def _worker_bell(channel: WaitChannel, client: WsClient) -> doorbell.Doorbell:
    bell = doorbell.Doorbell()  # this test thread's own: it plays the worker
    bell.attach(channel)
    bell.driver = client.loop_driver
    return bell


def test_without_a_driving_worker_the_loops_own_thread_runs_the_clients():
    channel = WaitChannel("fallback", 100)
    client = _Ticker(channel)
    client.start()
    try:
        assert isinstance(client.loop_driver, ClientLoop) and client.loop_driver.driven
        event = None
        end = time.monotonic() + PATIENCE_S
        while event is None and time.monotonic() < end:
            event = channel.drain(1)[0] if not channel.empty() else time.sleep(0.01)
        assert event is not None and event.payload == client.loop_driver.thread.ident
        assert client.loop_driver.takeovers >= 1
    finally:
        client.stop()
    assert client.finished.is_set()


def test_an_idle_worker_runs_the_clients_in_its_own_thread():
    channel = WaitChannel("driven", 100)
    client = _Ticker(channel)
    client.start()
    try:
        bell = _worker_bell(channel, client)
        me = threading.get_ident()
        items = _drive_until(bell, channel, lambda got: sum(e.payload == me for e in got) >= 5)
        assert sum(e.payload == me for e in items) >= 5  # read and handed over while this thread drove
        # a hand-over to this worker ends its drive at once: it does not run the loop to the timeout
        channel.drain(1000)
        started = time.monotonic()
        bell.wait(object(), PATIENCE_S)
        assert time.monotonic() - started < PATIENCE_S / 2 and not channel.empty()
    finally:
        client.stop()


def test_a_worker_that_drives_its_own_full_channel_goes_over_the_cap_instead_of_waiting_for_itself():
    channel = WaitChannel("tiny", 2)
    client = _Ticker(channel, burst=5)  # each tick hands over more than the channel holds
    client.start()
    try:
        bell = _worker_bell(channel, client)
        end = time.monotonic() + PATIENCE_S
        while time.monotonic() < end:
            bell.wait(object(), 0.05)  # without the over-cap rule, a tick in this drive would hang it
            if channel.qsize() > channel.maxsize:  # a whole tick went in while this thread drove
                break
            channel.drain(100)  # ticks the loop's thread ran wait for room, as in `shared` mode
        assert channel.qsize() > channel.maxsize
        assert len(channel.drain(100)) > channel.maxsize  # and the worker simply drains it
    finally:
        client.stop()
    assert client.finished.is_set()


def test_a_worker_asks_the_loops_thread_for_the_loop_and_gets_it():
    channel = WaitChannel("handback", 100)
    client = _Ticker(channel)
    client.start()
    loop = client.loop_driver
    try:
        end = time.monotonic() + PATIENCE_S
        while not loop._runner.locked() and time.monotonic() < end:  # the thread took over
            time.sleep(0.001)
        assert loop._runner.locked()
        # asked, the thread lets go after its current iteration, and this thread runs the loop
        assert loop.drive(0.05) is True
    finally:
        client.stop()


def test_a_client_stopped_from_inside_its_loop_does_not_wait_for_itself():
    channel = WaitChannel("self-stop", 100)

    class _Quitter(WsClient):
        exchange = "test"

        async def _main(self) -> None:
            while threading.get_ident() == self.loop_driver.thread.ident:  # until a worker's drive runs it
                await asyncio.sleep(0.001)
            self.stop(timeout=3 * PATIENCE_S)  # would block the worker's drive if it waited for `finished`

    client = _Quitter(WORKER, 0, channel)
    client.start()
    bell = _worker_bell(channel, client)
    started = time.monotonic()
    while not client.finished.is_set() and time.monotonic() - started < 2 * PATIENCE_S:
        bell.wait(object(), 0.05)
    assert client.finished.is_set() and time.monotonic() - started < PATIENCE_S
    assert channel.drain(10)[-1] is END


def test_a_second_worker_sleeps_in_its_bell_while_the_first_drives_and_is_woken_by_its_hand_overs():
    first_channel, second_channel = WaitChannel("first", 100), WaitChannel("second", 100)
    silent, second_client = (
        _Ticker(first_channel, burst=0),
        _Ticker(second_channel),
    )  # silent: never stops a drive
    silent.start()
    second_client.start()
    stop = threading.Event()
    first_ident: list[int] = []
    driving = threading.Event()

    def first_worker() -> None:  # drives the one loop of both clients in long slices until told to stop
        first_ident.append(threading.get_ident())
        bell = _worker_bell(first_channel, silent)
        while not stop.is_set():
            driving.set()
            bell.wait(object(), 0.5)

    thread = threading.Thread(target=first_worker, daemon=True)
    try:
        thread.start()
        assert driving.wait(PATIENCE_S)
        second_bell = _worker_bell(second_channel, second_client)
        items = _drive_until(
            second_bell,
            second_channel,
            lambda got: any(e.payload == first_ident[0] for e in got) and second_bell.wakeups >= 1,
        )
        assert any(e.payload == first_ident[0] for e in items)  # handed over by the other worker's drive
        assert second_bell.wakeups >= 1  # which woke this one, asleep in its bell (not waiting for the loop)
    finally:
        stop.set()
        thread.join(PATIENCE_S)
        silent.stop()
        second_client.stop()
