"""`connectors.registry.sources_for` inside a real Bytewax run: every configured venue's sharded
source (several clients per shard: Bybit spot + linear) ends with the replay and delivers every trade."""

from __future__ import annotations

from collections import Counter

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from connectors.registry import sources_for
from cryptoflow.config import Settings
from cryptoflow.model import Kind
from cryptoflow.simulator.venues import start_venues
from tests.support import bybit_okx_truth as truth


def test_ticks_from_bybit_and_okx_through_bytewax():
    sims = start_venues(["bybit", "okx"], "127.0.0.1", 0, 0.0)
    try:
        settings = Settings.model_validate({
            "exchanges": {
                "bybit": {"ws_url": sims["bybit"].ws_url, "rest_url": sims["bybit"].http_url,
                          "spot_symbols": ["BTCUSDT", "ETHUSDT"],
                          "linear_symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]},
                "okx": {"ws_url": sims["okx"].ws_url, "rest_url": sims["okx"].http_url,
                        "symbols": ["BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"]},
            },
            "connector": {"stop_at_replay_end": True, "reconnect_initial_s": 0.05},
            "sharding": {"total_shards": 3},
        })  # fmt: skip
        sources = dict(sources_for(settings, "ticks"))
        assert set(sources) == {"bybit", "okx"}
        flow = Dataflow("ticks_test")
        streams = [op.input(venue, flow, source) for venue, source in sources.items()]
        merged = op.merge("merge", *streams)
        got: list = []
        op.output("out", op.filter("trades", merged, lambda e: e.kind is Kind.TRADE), TestingSink(got))
        run_main(flow)
    finally:
        for sim in sims.values():
            sim.stop()
    bybit = Counter((e.exchange_symbol, e.payload[0]) for e in got if e.exchange == "bybit")
    okx = Counter((e.exchange_symbol, e.payload[0]) for e in got if e.exchange == "okx")
    assert bybit == Counter((t[1], t[2]) for t in truth.bybit_trades().elements())
    assert okx == Counter((t[0], t[1]) for t in truth.okx_trades().elements())
    # offsets are per shard stream and unique within it
    per_shard = Counter((e.exchange, e.shard, e.offset) for e in got)
    assert max(per_shard.values()) == 1
    with pytest.raises(ValueError, match="unknown stream"):
        sources_for(settings, "bars")
