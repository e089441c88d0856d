"""Trades: exchange trade messages, deduplicated by trade id, as tick rows.

Run: python -m bytewax.run dataflows.ticks [-w 1] [-r recovery/ -s 30 -b 60]
(the recovery store is created on first use; SIGTERM aborts cleanly, resuming from the last snapshot)
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from connectors.binance.source import binance_spot_source
from connectors.binance.spot_client import CHANNEL_TRADES
from connectors.iceberg.factory import iceberg_sink
from cryptoflow.config import Settings
from cryptoflow.runtime import process_settings
from cryptoflow.schemas import TABLES
from operators.positioned import PositionedLogic
from operators.trades import TradeLogic

STREAM = "ticks"
DEDUPE_WINDOW = 10_000


def build_flow(settings: Settings) -> Dataflow:
    flow = Dataflow(STREAM)
    events = op.input("binance_spot", flow, binance_spot_source(settings, {CHANNEL_TRADES}, STREAM))
    keyed = op.key_on("key", events, lambda e: e.key)
    rows = op.stateful("dedupe", keyed, lambda resume: PositionedLogic(TradeLogic(DEDUPE_WINDOW, resume)))
    op.output("iceberg", rows, iceberg_sink(settings, TABLES[STREAM], STREAM))
    return flow


flow = build_flow(process_settings())
