"""Binance spot as a sharded Bytewax source: this replica's shards of the configured symbols, one client
each, all sharing one egress manager (IP per shard, caps, 429 rotation, per-IP reconnect budget)."""

from __future__ import annotations

import queue

from connectors.binance.spot_client import BinanceSpotClient
from connectors.egress import egress_from_config
from connectors.source import ShardedSource
from cryptoflow.config import Settings
from cryptoflow.sharding import group_by_shard, owned_shards

EXCHANGE = "binance"


def binance_spot_shards(settings: Settings) -> dict[int, list[str]]:
    """Shard -> symbols for the shards this replica owns (and that hold at least one symbol)."""
    cfg = settings.exchanges.binance.spot
    sharding = settings.sharding
    symbols = cfg.symbols if cfg.enabled else []
    by_shard = group_by_shard(EXCHANGE, symbols, sharding.total_shards)
    mine = owned_shards(by_shard, sharding.replica_index, sharding.replica_count, sharding.ownership)
    return {shard: by_shard[shard] for shard in mine}


def binance_spot_source(settings: Settings, channels: set[str], stream: str) -> ShardedSource:
    cfg = settings.exchanges.binance.spot
    by_shard = binance_spot_shards(settings)
    caps = settings.channels.caps_for(EXCHANGE, stream)
    egress = egress_from_config(settings.sharding, by_shard)

    def make_clients(shard: int, out: queue.Queue) -> list[BinanceSpotClient]:
        return [
            BinanceSpotClient(cfg, settings.connector, by_shard[shard], channels, shard, out, egress=egress)
        ]

    return ShardedSource(
        sorted(by_shard),
        make_clients,
        caps.raw_cap,
        settings.connector.batch_size,
        settings.connector.idle_poll_ms,
    )
