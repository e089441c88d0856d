"""Funding and mark-price state of perpetuals from every configured derivatives venue: funding rate,
next funding time, mark / index / estimated settle price (Binance markPriceUpdate, 1 s).

Run: python -m bytewax.run dataflows.funding [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from cryptoflow.config import Settings
from cryptoflow.runtime import process_settings
from dataflows.common import build_stream_flow
from operators.derivatives import funding_logic

STREAM = "funding"


def build_flow(settings: Settings) -> Dataflow:
    return build_stream_flow(STREAM, settings, funding_logic)


flow = build_flow(process_settings())
