"""Trades: exchange trade messages, deduplicated by trade id, as tick rows.

Run: python -m bytewax.run dataflows.ticks [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from connectors.binance.source import binance_spot_source
from connectors.binance.spot_client import CHANNEL_TRADES
from connectors.iceberg.sink import IcebergSink
from cryptoflow.config import Settings
from cryptoflow.runtime import process_settings
from cryptoflow.schemas import TABLES
from operators.trades import TradeLogic

STREAM = "ticks"
DEDUPE_WINDOW = 10_000


def build_flow(settings: Settings) -> Dataflow:
    flow = Dataflow(STREAM)
    events = op.input("binance_spot", flow, binance_spot_source(settings, {CHANNEL_TRADES}, STREAM))
    keyed = op.key_on("key", events, lambda e: e.key)
    rows = op.stateful("dedupe", keyed, lambda resume: TradeLogic(DEDUPE_WINDOW, resume))
    op.output("iceberg", rows, IcebergSink(TABLES[STREAM], settings.catalog, settings.parquet, STREAM))
    return flow


flow = build_flow(process_settings())
