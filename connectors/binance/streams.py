"""Binance spot and USD-M in the stream registry (`connectors.registry`)."""

from __future__ import annotations

from functools import partial

from connectors.binance.client import (
    CHANNEL_BOOK_TICKER,
    CHANNEL_DEPTH,
    CHANNEL_FUNDING,
    CHANNEL_LIQUIDATIONS,
    CHANNEL_TRADES,
    SPOT,
    USDM,
)
from connectors.binance.source import binance_source
from connectors.registry import register

# stream -> (market, channels)
OFFERS = {
    ("ticks", SPOT): {CHANNEL_TRADES},
    ("ticks", USDM): {CHANNEL_TRADES},
    ("spot_delta", SPOT): {CHANNEL_DEPTH},
    ("spot_ob", SPOT): {CHANNEL_DEPTH, CHANNEL_BOOK_TICKER},
    ("futures_delta", USDM): {CHANNEL_DEPTH},
    ("futures_ob", USDM): {CHANNEL_DEPTH, CHANNEL_BOOK_TICKER},
    ("liquidations", USDM): {CHANNEL_LIQUIDATIONS},  # forceOrder: at most 1 per symbol per second
    ("funding", USDM): {CHANNEL_FUNDING},  # markPriceUpdate
}

for (stream, market), channels in OFFERS.items():
    register(
        stream, f"binance_{market}", partial(binance_source, market=market, channels=channels, stream=stream)
    )
