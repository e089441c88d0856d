"""Coinbase Advanced Trade in the stream registry (`connectors.registry`): trades (`market_trades`) and
level2 books (`spot_delta`, `spot_ob`; no checksum exists, so `spot_ob` rows are never `verified`)."""

from __future__ import annotations

from functools import partial

from connectors.coinbase.client import CHANNEL_LEVEL2, CHANNEL_TRADES
from connectors.coinbase.source import SOURCE, coinbase_source
from connectors.registry import register

OFFERS = {"ticks": {CHANNEL_TRADES}, "spot_delta": {CHANNEL_LEVEL2}, "spot_ob": {CHANNEL_LEVEL2}}

for stream, channels in OFFERS.items():
    register(stream, SOURCE, partial(coinbase_source, channels=channels, stream=stream))
