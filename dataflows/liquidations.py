"""Forced liquidations from every configured derivatives venue, one row each. `side` is the side of the
liquidated position (Binance forceOrder `S=SELL` = a long was liquidated; Bybit `Buy` = a long).
Binance pushes at most one liquidation per symbol per second (the latest), so its rows undercount.

Run: python -m bytewax.run dataflows.liquidations [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from cryptoflow.config import Settings
from cryptoflow.runtime import process_settings
from dataflows.common import build_stream_flow
from operators.derivatives import liquidation_logic

STREAM = "liquidations"


def build_flow(settings: Settings) -> Dataflow:
    return build_stream_flow(STREAM, settings, liquidation_logic)


flow = build_flow(process_settings())
