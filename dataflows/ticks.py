"""Trades from every configured venue (spot and derivatives), deduplicated by trade id, as tick rows.

Run: python -m bytewax.run dataflows.ticks [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from cryptoflow.config import Settings
from cryptoflow.runtime import process_settings
from dataflows.common import build_stream_flow
from operators.trades import TradeLogic

STREAM = "ticks"
DEDUPE_WINDOW = 10_000


def build_flow(settings: Settings) -> Dataflow:
    return build_stream_flow(STREAM, settings, lambda resume: TradeLogic(DEDUPE_WINDOW, resume))


flow = build_flow(process_settings())
