"""Coinbase Advanced Trade as a sharded Bytewax source (`channels`: level2 and/or market_trades)."""

from __future__ import annotations

from connectors.coinbase.client import CoinbaseClient, coinbase_parser
from connectors.coinbase.parsing import EXCHANGE
from connectors.source import ShardedSource
from connectors.venue_source import PlannedClients, subscribe_source, venue_clients
from cryptoflow.config import Settings

SOURCE = "coinbase_spot"  # the registry's name; also the journal's sub-directory


def coinbase_clients(settings: Settings, channels: set[str]) -> PlannedClients | None:
    """This replica's shards and their clients for `channels`; None when nothing is configured."""
    cfg = settings.exchanges.coinbase
    return venue_clients(
        settings, EXCHANGE, cfg.symbols if cfg.enabled else [], cfg.max_products_per_connection,
        lambda symbols, shard, out, egress: CoinbaseClient(
            cfg, settings.connector, symbols, channels, shard, out, egress=egress
        ),
    )  # fmt: skip


def coinbase_source(settings: Settings, *, channels: set[str], stream: str) -> ShardedSource | None:
    planned = coinbase_clients(settings, channels)
    if planned is None:
        return None
    return subscribe_source(settings, SOURCE, EXCHANGE, stream, *planned, coinbase_parser)
