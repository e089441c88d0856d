"""connectors/doorbell.py: an empty partition sleeps until its clients hand it data, and never sleeps while
its worker has work (items in another channel, or items another partition just emitted)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from connectors import doorbell
from connectors.backpressure import BoundedChannel, WaitChannel
from connectors.signals import END
from connectors.source import ShardPartition
from cryptoflow.model import Kind, RawEvent

LONG_S = 30.0  # a sleep that ran to its timeout would stall the test, not pass it


def _event(seq: int) -> RawEvent:
    return RawEvent("kraken", "spot", "BTC-USD", "BTC/USD", Kind.DEPTH_DIFF, 0, 0, 0, -1, {}, seq=seq)


def _later(seconds: float, action) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class _Client:
    def start(self) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...


def _partition(channel, idle_ms: int = int(LONG_S * 1000), clients: int = 1) -> ShardPartition:
    return ShardPartition("shard-00000", [_Client() for _ in range(clients)], channel, 0, 100, idle_ms)


@pytest.mark.parametrize("hand_over", ["put", "put_many", "put_weighted", "bounded"])
def test_a_sleeping_worker_wakes_on_every_kind_of_hand_over(hand_over):
    channel = BoundedChannel("t", 10) if hand_over == "bounded" else WaitChannel("t", 10)
    bell = doorbell.Doorbell()
    bell.attach(channel)
    actions = {
        "put": lambda: channel.put(_event(1)),
        "put_many": lambda: channel.put_many([_event(1), _event(2)]),
        "put_weighted": lambda: channel.put_weighted(_event(1), 3),
        "bounded": lambda: channel.put(_event(1)),
    }
    producer = _later(0.05, actions[hand_over])
    started = time.monotonic()
    bell.wait(object(), LONG_S)
    producer.join()
    assert (bell.sleeps, bell.wakeups) == (1, 1)  # it slept, and a ring (not the timeout) ended it
    assert time.monotonic() - started < LONG_S / 2
    assert not channel.empty()


def test_no_sleep_while_any_channel_of_the_worker_has_items():
    quiet, busy = WaitChannel("quiet", 10), WaitChannel("busy", 10)
    bell = doorbell.Doorbell()
    bell.attach(quiet)
    bell.attach(busy)
    busy.put(_event(1))
    bell.wait(object(), LONG_S)
    assert bell.sleeps == 0


def test_no_sleep_until_the_polls_came_back_round_to_the_partition_that_emitted():
    channel = WaitChannel("t", 10)
    bell = doorbell.Doorbell()
    bell.attach(channel)
    first, second = object(), object()
    bell.emitted(first)
    bell.wait(second, 0.01)  # `first`'s items may still be on their way downstream
    bell.wait(second, 0.01)
    assert bell.sleeps == 0
    bell.wait(first, 0.01)  # a whole round of polls since `first` emitted: it may sleep now
    assert (bell.sleeps, bell.wakeups) == (1, 0)


def test_a_channel_rings_only_the_bell_it_is_attached_to():
    channel = WaitChannel("t", 10)
    bell = doorbell.Doorbell()
    bell.attach(channel)
    assert channel.doorbell is bell
    bell.detach(channel)
    assert channel.doorbell is None
    _later(0.05, lambda: channel.put(_event(1)))
    bell.wait(object(), 0.3)
    assert (bell.sleeps, bell.wakeups) == (1, 0)  # nobody rang: it slept to the timeout


def test_every_worker_thread_has_its_own_bell():
    bells: list[doorbell.Doorbell] = []
    threads = [threading.Thread(target=lambda: bells.append(doorbell.for_this_thread())) for _ in range(2)]
    for thread in threads:
        thread.start()
        thread.join()
    assert bells[0] is not bells[1]
    assert doorbell.for_this_thread() is doorbell.for_this_thread()


def test_an_empty_partition_returns_the_frames_it_was_woken_for_and_asks_to_be_polled_at_once():
    channel = WaitChannel("t", 10)
    part = _partition(channel)
    _later(0.05, lambda: channel.put_many([_event(1), _event(2)]))
    batch = part.next_batch()  # slept in the bell, drained after the ring
    assert [e.offset for e in batch] == [0, 1]
    assert part._bell is doorbell.for_this_thread() and part._bell.wakeups >= 1
    assert part.next_awake() is None  # items: Bytewax polls again at once
    part._bell.emitted(object())  # as if another partition had just emitted: no sleep
    assert part.next_batch() == []
    awake = part.next_awake()
    assert awake is not None and awake <= datetime.now(UTC)  # it waited in the bell already
    part.close()
    assert channel.doorbell is None


def test_the_poll_mode_keeps_bytewaxs_idle_wait():
    channel = WaitChannel("t", 10)
    part = ShardPartition("shard-00000", [_Client()], channel, 0, 100, 50, wake_on_data=False)
    assert part.next_batch() == []
    assert part._bell is None and channel.doorbell is None
    assert part.next_awake() > datetime.now(UTC)


def test_a_partition_leaves_its_bell_when_its_clients_ended():
    channel = WaitChannel("t", 10)
    part = _partition(channel)
    channel.put(_event(1))
    assert len(part.next_batch()) == 1
    channel.put(END, control=True)
    assert part.next_batch() == []
    with pytest.raises(StopIteration):
        part.next_batch()
    assert channel.doorbell is None
    assert part._bell is None


class _Task:
    def __init__(self, has_work: bool = True) -> None:
        self.has_work, self.runs = has_work, 0

    def run_idle(self) -> bool:
        self.runs += 1
        return self.has_work


def test_idle_tasks_run_one_slice_per_idle_moment_and_never_while_another_partition_emitted():
    channel = WaitChannel("t", 10)
    bell = doorbell.Doorbell()
    bell.attach(channel)
    nothing, first, second = _Task(has_work=False), _Task(), _Task()
    for task in (nothing, first, second):
        bell.add_idle_task(task)
    emitter, waiting = object(), object()
    bell.emitted(emitter)
    bell.wait(waiting, 0.001)  # the emitter's items are still downstream: back to work, no slice
    assert (nothing.runs, first.runs, second.runs) == (0, 0, 0)
    bell.wait(emitter, 0.001)  # the polls came back round to it: the worker is idle
    assert (nothing.runs, first.runs, second.runs) == (1, 1, 0) and bell.idle_slices == 1
    bell.remove_idle_task(first)
    bell.wait(waiting, 0.001)
    assert (first.runs, second.runs) == (1, 1)
