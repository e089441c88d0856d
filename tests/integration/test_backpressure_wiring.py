"""Backpressure through the real client -> source path: the Binance USD-M client replays the recording's
aggTrades (91, all on one shard) as fast as the simulator can send them into the partition's channel,
which a deliberately slow consumer drains through `ShardPartition.next_batch`. Each configured policy
must do what it says, counted, and the client's END must always arrive (the partition ends)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from connectors.backpressure import BoundedChannel
from connectors.binance.client import CHANNEL_TRADES, USDM
from connectors.binance.source import binance_source
from cryptoflow import metrics
from cryptoflow.config import load_settings
from cryptoflow.model import Kind, RawEvent
from cryptoflow.simulator.server import ExchangeSimulator
from tests.support.recording_truth import binance_usdm_trades

pytestmark = pytest.mark.integration
USDM_SYMBOLS = "[SUSHIUSDT, AKROUSDT, KEEPUSDT, CTKUSDT]"


def drain_slowly(sim: ExchangeSimulator, tmp: Path, policy: str, cap: int = 10, **extra: str):
    """Run the single partition to its end, sleeping between batches of one; returns (trade ids in
    arrival order, the partition's channel)."""
    env = {
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__ENABLED": "false",
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__SYMBOLS": USDM_SYMBOLS,
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__WS_URL": sim.ws_url,
        "CRYPTOFLOW_EXCHANGES__BINANCE__USDM__REST_URL": sim.http_url,
        "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
        "CRYPTOFLOW_CONNECTOR__BATCH_SIZE": "1",
        "CRYPTOFLOW_SHARDING__TOTAL_SHARDS": "1",
        "CRYPTOFLOW_CHANNELS__SPILL_DIR": str(tmp / "spill"),
        "CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__TICKS__RAW_CAP": str(cap),
        "CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__TICKS__POLICY": policy,
        "CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__TICKS__SAMPLE_EVERY": "3",
        "CRYPTOFLOW_CHANNELS__OVERRIDES__BINANCE__TICKS__HIGH_WATER_SUSTAIN_S": "0.05",
        **extra,
    }
    settings = load_settings(environ=env)
    source = binance_source(settings, market=USDM, channels={CHANNEL_TRADES}, stream="ticks")
    assert source is not None
    (part_name,) = source.list_parts()
    part = source.build_part("ticks_in", part_name, None)
    channel = part.queue
    assert isinstance(channel, BoundedChannel) and channel.policy.value == policy
    got: list[tuple[str, int]] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                batch = part.next_batch()
            except StopIteration:
                return got, channel
            for event in batch:
                assert isinstance(event, RawEvent)
                if event.kind is Kind.TRADE:
                    got.append((event.exchange_symbol, int(event.payload[0])))
            time.sleep(0.02)  # the slow consumer: ~50 events/s against a full-speed replay
        raise AssertionError(f"{policy}: the partition never ended (END lost?)")
    finally:
        part.close()


def recorded() -> list[tuple[str, int]]:
    return [(t["s"], int(t["a"])) for t in binance_usdm_trades()]


def is_subsequence(part: list, whole: list) -> bool:
    it = iter(whole)
    return all(x in it for x in part)


@pytest.fixture
def sim(binance_usdm_venue):
    with ExchangeSimulator(binance_usdm_venue, speed=0.0) as simulator:
        yield simulator


def test_wait_loses_nothing_and_reports_sustained_high_water(sim, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="connectors.backpressure")
    got, channel = drain_slowly(sim, tmp_path, "wait")
    assert got == recorded() and channel.dropped == 0
    # the producer sat on a full channel for far longer than 0.05 s: one metric + log line per episode
    assert channel.high_water_episodes >= 1
    assert metrics.CHANNEL_HIGH_WATER.labels(channel.name)._value.get() == channel.high_water_episodes
    assert any(f"channel {channel.name}: above 80% full" in r.getMessage() for r in caplog.records)


def test_drop_oldest_keeps_the_newest_counts_the_rest_and_still_ends(sim, tmp_path):
    got, channel = drain_slowly(sim, tmp_path, "drop-oldest")
    truth = recorded()
    assert channel.dropped > 0 and len(got) + channel.dropped == len(truth)
    assert is_subsequence(got, truth) and got[-1] == truth[-1]  # order kept; the newest survives
    assert metrics.BACKPRESSURE_DROPS.labels(channel.name, "drop-oldest")._value.get() == channel.dropped


def test_sample_admits_a_thinned_stream_in_order(sim, tmp_path):
    got, channel = drain_slowly(sim, tmp_path, "sample")
    truth = recorded()
    assert channel.dropped > 0 and len(got) + channel.dropped == len(truth)
    assert is_subsequence(got, truth)
    assert metrics.BACKPRESSURE_DROPS.labels(channel.name, "sample")._value.get() == channel.dropped


def test_spill_loses_nothing_keeps_order_and_cleans_up(sim, tmp_path):
    got, channel = drain_slowly(sim, tmp_path, "spill")
    assert got == recorded()
    assert channel.spilled > 0 and channel.dropped == 0
    assert channel.unspilled == channel.spilled + 1  # and the client's END, spilled behind them
    assert metrics.BACKPRESSURE_DROPS.labels(channel.name, "spill")._value.get() == channel.spilled
    spill_dir = tmp_path / "spill" / channel.name
    assert not spill_dir.exists() or sum(p.stat().st_size for p in spill_dir.iterdir()) < 1 << 20
