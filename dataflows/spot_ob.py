"""Spot order-book snapshots: Binance spot diffs + REST snapshots (+ bookTicker for the cross-check)
-> verified books -> `spot_ob` rows every 100 ms of event time (full checkpoints every 1 s), and a
`gaps` row for every break.

Run: python -m bytewax.run dataflows.spot_ob [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from connectors.binance.source import binance_spot_source
from connectors.binance.spot_client import CHANNEL_BOOK_TICKER, CHANNEL_DEPTH
from connectors.iceberg.factory import iceberg_sink
from cryptoflow.config import Settings
from cryptoflow.model import BookRow
from cryptoflow.runtime import process_settings
from cryptoflow.schemas import TABLES
from operators.book.tracker import BINANCE_SPOT
from operators.book_logic import BookLogic, book_settings
from operators.positioned import PositionedLogic

STREAM = "spot_ob"


def build_flow(settings: Settings) -> Dataflow:
    flow = Dataflow(STREAM)
    channels = {CHANNEL_DEPTH, CHANNEL_BOOK_TICKER}
    events = op.input("binance_spot", flow, binance_spot_source(settings, channels, STREAM))
    keyed = op.key_on("key", events, lambda e: e.key)
    book = book_settings(settings.book, STREAM)
    out = op.stateful("book", keyed, lambda resume: PositionedLogic(BookLogic(BINANCE_SPOT, book, resume)))
    split = op.branch("split", out, lambda key_row: isinstance(key_row[1].row, BookRow))
    op.output("iceberg_ob", split.trues, iceberg_sink(settings, TABLES[STREAM], STREAM))
    op.output("iceberg_gaps", split.falses, iceberg_sink(settings, TABLES["gaps"], f"{STREAM}-gaps"))
    return flow


flow = build_flow(process_settings())
