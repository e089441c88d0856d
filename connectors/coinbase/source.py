"""Coinbase Advanced Trade as a sharded Bytewax source (`channels`: level2 and/or market_trades)."""

from __future__ import annotations

from connectors.coinbase.client import CoinbaseClient, coinbase_parser
from connectors.coinbase.parsing import EXCHANGE
from connectors.source import ShardedSource
from connectors.venue_source import venue_source
from cryptoflow.config import Settings

SOURCE = "coinbase_spot"  # the registry's name; also the journal's sub-directory


def coinbase_source(settings: Settings, *, channels: set[str], stream: str) -> ShardedSource | None:
    cfg = settings.exchanges.coinbase
    return venue_source(
        settings, SOURCE, EXCHANGE, cfg.symbols if cfg.enabled else [], cfg.max_products_per_connection, stream,
        lambda symbols, shard, out, egress: CoinbaseClient(
            cfg, settings.connector, symbols, channels, shard, out, egress=egress
        ),
        coinbase_parser,
    )  # fmt: skip
