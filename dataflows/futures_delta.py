"""Perpetual and dated-futures order-book deltas from every configured derivatives venue: diffs
sequenced against snapshots, as level rows; every sequence break also lands a row in `gaps`.

Run: python -m bytewax.run dataflows.futures_delta [-w 1] [-r recovery/ -s 30 -b 60]
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from cryptoflow.config import Settings
from cryptoflow.runtime import process_settings
from dataflows.common import build_stream_flow
from operators.venue_delta import VenueDeltaLogic

STREAM = "futures_delta"


def build_flow(settings: Settings) -> Dataflow:
    book = settings.book
    return build_stream_flow(
        STREAM, settings,
        lambda resume: VenueDeltaLogic(STREAM, book.depth_cap, book.max_buffered_diffs, resume),
        with_gaps=True,
    )  # fmt: skip


flow = build_flow(process_settings())
