"""Spot order-book deltas: exchange diffs, sequenced against REST snapshots, as level rows; every
sequence break also lands a row in `gaps`.

Run: python -m bytewax.run dataflows.spot_delta [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from connectors.binance.source import binance_spot_source
from connectors.binance.spot_client import CHANNEL_DEPTH
from connectors.iceberg.sink import IcebergSink
from cryptoflow.config import Settings
from cryptoflow.model import LevelBatch
from cryptoflow.runtime import process_settings
from cryptoflow.schemas import TABLES
from operators.delta_sync import DeltaSyncLogic
from operators.sequencing.binance import spot_verdict

STREAM = "spot_delta"


def build_flow(settings: Settings) -> Dataflow:
    flow = Dataflow(STREAM)
    events = op.input("binance_spot", flow, binance_spot_source(settings, {CHANNEL_DEPTH}, STREAM))
    keyed = op.key_on("key", events, lambda e: e.key)
    max_buffered = settings.book.max_buffered_diffs
    rows = op.stateful(
        "sequence", keyed, lambda resume: DeltaSyncLogic(spot_verdict, max_buffered, resume, STREAM)
    )
    split = op.branch("split", rows, lambda key_row: isinstance(key_row[1], LevelBatch))
    cat, parquet = settings.catalog, settings.parquet
    op.output("iceberg", split.trues, IcebergSink(TABLES[STREAM], cat, parquet, STREAM))
    op.output("iceberg_gaps", split.falses, IcebergSink(TABLES["gaps"], cat, parquet, f"{STREAM}-gaps"))
    return flow


flow = build_flow(process_settings())
