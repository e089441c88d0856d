"""Binance spot as a sharded Bytewax source: the configured symbols grouped by shard, one client each."""

from __future__ import annotations

from typing import Any

from connectors.binance.decode import BinanceSpotDecoder
from connectors.binance.spot_client import BinanceSpotClient
from connectors.source import ShardedSource
from cryptoflow.config import Settings
from cryptoflow.sharding import group_by_shard

EXCHANGE = "binance"


def binance_spot_source(settings: Settings, channels: set[str], stream: str) -> ShardedSource:
    cfg = settings.exchanges.binance.spot
    symbols = cfg.symbols if cfg.enabled else []
    by_shard = group_by_shard(EXCHANGE, symbols, settings.sharding.total_shards)
    caps = settings.channels.caps_for(EXCHANGE, stream)

    def make_clients(shard: int, out: Any) -> list[BinanceSpotClient]:
        local_addr = settings.sharding.per_shard_ip_override.get(shard)
        return [BinanceSpotClient(cfg, settings.connector, by_shard[shard], channels, shard, out, local_addr)]

    return ShardedSource(
        sorted(by_shard),
        make_clients,
        caps.raw_cap,
        settings.connector.batch_size,
        settings.connector.idle_poll_ms,
        journal=settings.journal,
        make_decoder=lambda shard, state: BinanceSpotDecoder(shard, state),
        stream=stream,
    )
