"""Binance spot client: `connectors.binance.client.BinanceClient` for the spot market (kept as its own
name because the spot flows and tests import it)."""

from __future__ import annotations

import queue

from connectors.binance.client import (
    CHANNEL_BOOK_TICKER,
    CHANNEL_DEPTH,
    CHANNEL_TRADES,
    REPLAY_END_CLOSE_CODE,
    SPOT,
    THROTTLE_STATUSES,
    BinanceClient,
    now_us,
)
from connectors.egress import EgressManager
from connectors.journal import JournalWriter
from cryptoflow.config import BinanceSpotConfig, ConnectorConfig

__all__ = [
    "CHANNEL_BOOK_TICKER",
    "CHANNEL_DEPTH",
    "CHANNEL_TRADES",
    "REPLAY_END_CLOSE_CODE",
    "THROTTLE_STATUSES",
    "BinanceSpotClient",
    "now_us",
]


class BinanceSpotClient(BinanceClient):
    def __init__(
        self,
        cfg: BinanceSpotConfig,
        connector: ConnectorConfig,
        symbols: list[str],
        channels: set[str],
        shard: int,
        out: queue.Queue | JournalWriter,
        local_addr: str | None = None,
        egress: EgressManager | None = None,
    ) -> None:
        super().__init__(SPOT, cfg, connector, symbols, channels, shard, out, local_addr, egress=egress)
