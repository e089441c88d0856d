"""Trades: every configured exchange's trade messages (Binance spot, Coinbase, Kraken: see
`connectors.registry`), deduplicated by trade id per instrument, as tick rows.

Run: python -m bytewax.run dataflows.ticks [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from connectors.iceberg.sink import IcebergSink
from connectors.registry import sources
from cryptoflow.config import Settings
from cryptoflow.runtime import process_settings
from cryptoflow.schemas import TABLES
from operators.trades import TradeLogic

STREAM = "ticks"
DEDUPE_WINDOW = 10_000


def build_flow(settings: Settings) -> Dataflow:
    flow = Dataflow(STREAM)
    inputs = [op.input(entry.exchange, flow, source) for entry, source in sources(settings, STREAM)]
    if not inputs:
        raise SystemExit(f"cryptoflow: no exchange with symbols is configured for stream {STREAM}")
    events = inputs[0] if len(inputs) == 1 else op.merge("all_exchanges", *inputs)
    keyed = op.key_on("key", events, lambda e: e.key)
    rows = op.stateful("dedupe", keyed, lambda resume: TradeLogic(DEDUPE_WINDOW, resume))
    op.output("iceberg", rows, IcebergSink(TABLES[STREAM], settings.catalog, settings.parquet, STREAM))
    return flow


flow = build_flow(process_settings())
