"""Spot order-book deltas: exchange diffs, sequenced against REST snapshots, as level rows; every
sequence break also lands a row in `gaps`.

Run: python -m bytewax.run dataflows.spot_delta [-w 1] [-r recovery/ -s 30 -b 60]
(the recovery store is created on first use; SIGTERM aborts cleanly, resuming from the last snapshot)
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from connectors.binance.source import binance_spot_source
from connectors.binance.spot_client import CHANNEL_DEPTH
from connectors.iceberg.factory import iceberg_sink
from cryptoflow.config import Settings
from cryptoflow.model import LevelBatch
from cryptoflow.runtime import process_settings
from cryptoflow.schemas import TABLES
from operators.delta_sync import DeltaSyncLogic
from operators.positioned import PositionedLogic
from operators.sequencing.binance import spot_verdict

STREAM = "spot_delta"


def build_flow(settings: Settings) -> Dataflow:
    flow = Dataflow(STREAM)
    events = op.input("binance_spot", flow, binance_spot_source(settings, {CHANNEL_DEPTH}, STREAM))
    keyed = op.key_on("key", events, lambda e: e.key)
    max_buffered = settings.book.max_buffered_diffs
    rows = op.stateful(
        "sequence",
        keyed,
        lambda resume: PositionedLogic(DeltaSyncLogic(spot_verdict, max_buffered, resume, STREAM)),
    )
    split = op.branch("split", rows, lambda key_row: isinstance(key_row[1].row, LevelBatch))
    op.output("iceberg", split.trues, iceberg_sink(settings, TABLES[STREAM], STREAM))
    op.output("iceberg_gaps", split.falses, iceberg_sink(settings, TABLES["gaps"], f"{STREAM}-gaps"))
    return flow


flow = build_flow(process_settings())
