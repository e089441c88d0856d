"""Kraken spot v2 as a sharded Bytewax source (`channels`: book and/or trade)."""

from __future__ import annotations

from connectors.kraken.client import KrakenClient
from connectors.kraken.parsing import EXCHANGE
from connectors.source import ShardedSource
from connectors.venue_source import venue_source
from cryptoflow.config import Settings


def kraken_source(settings: Settings, *, channels: set[str], stream: str) -> ShardedSource | None:
    cfg = settings.exchanges.kraken
    return venue_source(
        settings, EXCHANGE, cfg.symbols if cfg.enabled else [], cfg.max_symbols_per_connection, stream,
        lambda symbols, shard, out, ip: KrakenClient(cfg, settings.connector, symbols, channels, shard, out, ip),
    )  # fmt: skip
