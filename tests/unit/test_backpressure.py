import threading

import pytest

from connectors.backpressure import (
    BoundedChannel,
    Empty,
    Policy,
    WaitChannel,
    channel_from_caps,
    channel_spec,
    open_channel,
)
from connectors.spill import SpillJournal
from cryptoflow import metrics
from cryptoflow.config import ConfigError, load_settings
from cryptoflow.model import Kind, RawEvent


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drain(ch: BoundedChannel) -> list:
    out = []
    while True:
        try:
            out.append(ch.get_nowait())
        except Empty:
            return out


def test_drop_oldest_keeps_the_newest_and_counts():
    ch = BoundedChannel("t-drop", 3, "drop-oldest")
    assert all(ch.put(i) for i in range(5))
    assert drain(ch) == [2, 3, 4]
    assert ch.dropped == 2
    assert metrics.BACKPRESSURE_DROPS.labels("t-drop", "drop-oldest")._value.get() == 2


def test_sample_admits_every_nth_item_under_pressure():
    ch = BoundedChannel("t-sample", 2, Policy.SAMPLE, sample_every=3)
    results = [ch.put(i) for i in range(8)]
    # 0,1 fill it; then 2,3 dropped, 4 admitted (replacing the oldest), 5,6 dropped, 7 admitted
    assert results == [True, True, False, False, True, False, False, True]
    assert drain(ch) == [4, 7]
    assert ch.dropped == 6  # 4 refused + 2 evicted by admitted samples
    assert [ch.put(i) for i in (10, 11)] == [True, True]  # pressure gone: everything admitted


def test_spill_keeps_order_until_the_reader_drains_the_spill():
    spilled = []
    ch = BoundedChannel("t-spill", 2, "spill", spill=spilled.append)
    for i in range(5):
        assert ch.put(i)
    assert drain(ch) == [0, 1] and spilled == [2, 3, 4]
    assert ch.put(5) and spilled == [2, 3, 4, 5]  # still spilling: order 2,3,4,5 is preserved
    ch.spill_drained()
    ch.put(6)
    assert drain(ch) == [6] and ch.spilled == 4 and ch.dropped == 0
    with pytest.raises(ValueError):
        BoundedChannel("t-spill-bad", 2, "spill")


def test_wait_blocks_the_producer_until_the_consumer_takes():
    ch = BoundedChannel("t-wait", 1, "wait")
    assert ch.put("a")
    assert not ch.put("b", timeout=0.05)  # still full after the timeout
    done = threading.Event()

    def producer():
        ch.put("c")
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.1)  # blocked
    assert ch.get(timeout=1) == "a"
    t.join(2)
    assert done.is_set() and ch.get(timeout=1) == "c" and ch.dropped == 0


def test_sustained_high_occupancy_raises_metric_and_log_once(caplog):
    clock = FakeClock()
    ch = BoundedChannel("t-hw", 10, "drop-oldest", sustain_s=5, clock=clock)
    before = metrics.CHANNEL_HIGH_WATER.labels("t-hw")._value.get()
    for i in range(9):
        ch.put(i)  # 90% full
    clock.now = 4.9
    ch.check_high_water()
    assert ch.high_water_episodes == 0  # brief spikes are fine
    clock.now = 5.0
    ch.check_high_water()
    clock.now = 9.0
    ch.put(9)
    assert ch.high_water_episodes == 1  # one alert per episode
    assert metrics.CHANNEL_HIGH_WATER.labels("t-hw")._value.get() == before + 1
    assert "above 80% full" in caplog.text
    assert metrics.CHANNEL_OCCUPANCY.labels("t-hw")._value.get() == 1.0
    drain(ch)  # recovers; a new episode may alert again
    for i in range(9):
        ch.put(i)
    clock.now = 20.0
    ch.check_high_water()
    assert ch.high_water_episodes == 2


def test_caps_and_policy_per_exchange_and_stream_come_from_config():
    settings = load_settings(
        environ={
            "CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__TICKS": "{raw_cap: 64, policy: sample, sample_every: 4}",
        }
    )
    ch = channel_from_caps("t-cfg", settings.channels.caps_for("binance", "ticks"))
    assert (ch.capacity, ch.policy, ch.sample_every) == (64, Policy.SAMPLE, 4)
    default = channel_from_caps("t-cfg2", settings.channels.caps_for("binance", "spot_delta"))
    assert default.policy is Policy.WAIT and default.capacity == 32768  # configs/dev override


def test_control_items_bypass_the_policy():
    spilled = []
    ch = BoundedChannel("t-ctl", 1, "spill", spill=spilled.append)
    ch.put(1)
    ch.put(2)  # spilled
    assert ch.put("END", control=True)
    # while spilling, END queues behind the spilled items: overtaking them would end the partition early
    assert drain(ch) == [1] and spilled == [2, "END"]
    full = BoundedChannel("t-ctl-drop", 2, "drop-oldest")
    for i in range(3):
        full.put(i)
    assert full.put("END", control=True)
    assert drain(full) == [1, 2, "END"] and full.dropped == 1  # END is never the one dropped


def test_self_read_spill_keeps_order_and_sentinel_identity(tmp_path):
    end = object()
    store = SpillJournal(tmp_path / "spill", "t")
    ch = BoundedChannel("t-spill-journal", 2, "spill", spill=store.append, unspill=store.take)
    events = [trade(i) for i in range(600)]  # more than one read-ahead of the spill
    for event in events[:300]:
        assert ch.put(event)
    assert ch.spilling and ch.qsize() == 300
    got = [ch.get_nowait() for _ in range(100)]
    for event in events[300:]:
        assert ch.put(event)  # still spilling: behind what is on disk
    assert ch.put(end, control=True)
    got += drain(ch)
    assert got[-1] is end and [e.payload for e in got[:-1]] == [e.payload for e in events]
    assert ch.spilled == 598 and not ch.spilling and ch.qsize() == 0
    assert ch.put(events[0]) and ch.qsize() == 1 and not ch.spilling  # back to memory
    store.close()
    assert not (tmp_path / "spill").exists()


def trade(i: int) -> RawEvent:
    return RawEvent(
        "binance", "spot", "BTC-USDT", "BTCUSDT", Kind.TRADE, i, i, 0, 0, (str(i), "1", "1", "buy")
    )


def test_book_streams_refuse_drop_policies_at_config_load():
    for env in (
        {"CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__SPOT_DELTA__POLICY": "drop-oldest"},
        {"CRYPTOFLOW_CHANNELS__OVERRIDES__OKX__FUTURES_OB__POLICY": "sample"},
        {"CRYPTOFLOW_CHANNELS__DEFAULTS__POLICY": "drop-oldest"},  # defaults reach the book streams too
    ):
        with pytest.raises(ConfigError, match="may only wait or spill"):
            load_settings(environ=env)
    for env in (
        {"CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__TICKS__POLICY": "drop-oldest"},
        {"CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__FUNDING__POLICY": "sample"},
        {"CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__SPOT_DELTA__POLICY": "spill"},
    ):
        load_settings(environ=env)


def test_wait_channel_blocks_when_full_lets_control_items_through_and_alerts_on_sustained_fill():
    clock = FakeClock()
    ch = WaitChannel("t-fast-wait", 2, sustain_s=5, clock=clock)
    assert ch.put("a") and ch.put("b")
    assert not ch.put("c", timeout=0.02)  # full: the producer waits, then gives up after the timeout
    assert ch.high_water_episodes == 0  # first sighting of a full channel starts the clock
    clock.now = 6.0
    ch.check_high_water()  # what the process-wide watcher does each second
    assert ch.high_water_episodes == 1
    assert metrics.CHANNEL_HIGH_WATER.labels("t-fast-wait")._value.get() == 1
    end = object()
    assert ch.put(end, control=True)  # END is never refused, even by a full channel
    assert ch.drain(10) == ["a", "b", end]
    assert ch.put("d", timeout=0.02)  # room again


def test_open_channel_picks_the_lock_free_channel_for_wait_only():
    assert isinstance(open_channel(8, "t-open-int"), WaitChannel)
    settings = load_settings(environ={"CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__TICKS__POLICY": "sample"})

    spec = channel_spec(settings, "binance", "ticks")
    assert isinstance(open_channel(spec, "t-open-sample"), BoundedChannel)
    assert isinstance(
        open_channel(channel_spec(settings, "binance", "spot_delta"), "t-open-wait"), WaitChannel
    )


def _events(n: int, start: int = 0) -> list[RawEvent]:
    return [
        RawEvent("binance", "spot", "BTC-USDT", "BTCUSDT", Kind.DEPTH_DIFF, None, 0, 0, -1, None, seq=i)
        for i in range(start, start + n)
    ]


def test_batch_hand_over_on_a_wait_channel_keeps_order_and_blocks_for_the_rest():
    from connectors.client_io import put_all_until_stopped

    ch, stop = WaitChannel("t-batch-wait", 4), threading.Event()
    first = _events(3)
    put_all_until_stopped(ch, first, stop)  # fits: one extend
    assert ch.drain(10) == first
    batch = _events(10, 100)
    done = threading.Event()
    t = threading.Thread(target=lambda: (put_all_until_stopped(ch, batch, stop), done.set()))
    t.start()
    assert not done.wait(0.1)  # 4 fit, the producer waits for room for the other 6
    got = []
    while len(got) < 10:
        got.extend(ch.drain(3))
    t.join(2)
    assert done.is_set() and got == batch  # nothing lost, nothing reordered


def test_batch_hand_over_stops_waiting_when_the_client_stops():
    from connectors.client_io import put_all_until_stopped

    ch, stop = WaitChannel("t-batch-stop", 2), threading.Event()
    t = threading.Thread(target=put_all_until_stopped, args=(ch, _events(5), stop))
    t.start()
    t.join(0.2)
    assert t.is_alive()  # blocked on the third item
    stop.set()
    t.join(2)
    assert not t.is_alive() and ch.qsize() == 2


@pytest.mark.parametrize("policy", ["drop-oldest", "sample"])
def test_batch_hand_over_on_drop_policies_decides_and_counts_per_item(policy):
    from connectors.client_io import put_all_until_stopped

    name = f"t-batch-{policy}"
    ch, reference = (
        BoundedChannel(name, 3, policy, sample_every=4),
        BoundedChannel(name + "-ref", 3, policy, sample_every=4),
    )
    items = _events(11)
    put_all_until_stopped(ch, items, threading.Event())
    for item in items:  # the same items offered one by one: the batch path must end in the same state
        reference.put(item)
    assert drain(ch) == drain(reference) and ch.dropped == reference.dropped == 8
    assert metrics.BACKPRESSURE_DROPS.labels(name, policy)._value.get() == 8
