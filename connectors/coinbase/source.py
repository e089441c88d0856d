"""Coinbase Advanced Trade as a sharded Bytewax source (`channels`: level2 and/or market_trades)."""

from __future__ import annotations

from connectors.coinbase.client import CoinbaseClient
from connectors.coinbase.parsing import EXCHANGE
from connectors.source import ShardedSource
from connectors.venue_source import venue_source
from cryptoflow.config import Settings


def coinbase_source(settings: Settings, *, channels: set[str], stream: str) -> ShardedSource | None:
    cfg = settings.exchanges.coinbase
    return venue_source(
        settings, EXCHANGE, cfg.symbols if cfg.enabled else [], cfg.max_products_per_connection, stream,
        lambda symbols, shard, out, ip: CoinbaseClient(cfg, settings.connector, symbols, channels, shard, out, ip),
    )  # fmt: skip
