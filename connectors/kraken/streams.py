"""Kraken spot v2 in the stream registry (`connectors.registry`): trades (`trade`) and checksummed
books (`book`: `spot_delta`, `spot_ob`)."""

from __future__ import annotations

from functools import partial

from connectors.kraken.client import CHANNEL_BOOK, CHANNEL_TRADE
from connectors.kraken.source import SOURCE, kraken_source
from connectors.registry import register

OFFERS = {"ticks": {CHANNEL_TRADE}, "spot_delta": {CHANNEL_BOOK}, "spot_ob": {CHANNEL_BOOK}}

for stream, channels in OFFERS.items():
    register(stream, SOURCE, partial(kraken_source, channels=channels, stream=stream))
