"""Perpetual and dated-futures order-book snapshots from every configured derivatives venue: verified
books -> `futures_ob` rows every 100 ms of event time (full checkpoints every 1 s), and a `gaps` row for
every break. Binance books are cross-checked against bookTicker, OKX/Kraken against their checksums.

Run: python -m bytewax.run dataflows.futures_ob [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from cryptoflow.config import Settings
from cryptoflow.runtime import process_settings
from dataflows.common import build_stream_flow
from operators.book_logic import BookLogic, book_settings

STREAM = "futures_ob"


def build_flow(settings: Settings) -> Dataflow:
    book = book_settings(settings.book, STREAM)
    return build_stream_flow(STREAM, settings, lambda resume: BookLogic(None, book, resume), with_gaps=True)


flow = build_flow(process_settings())
