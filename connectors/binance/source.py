"""Binance spot and USD-M as sharded Bytewax sources: the configured symbols grouped by shard, one client
per shard (which opens as many connections as its streams need)."""

from __future__ import annotations

import queue

from connectors.binance.client import SPOT, USDM, BinanceClient
from connectors.source import ShardedSource
from cryptoflow.config import Settings
from cryptoflow.sharding import group_by_shard

EXCHANGE = "binance"


def binance_source(
    settings: Settings, *, market: str, channels: set[str], stream: str
) -> ShardedSource | None:
    """None when the market is disabled or has no symbols. Spot and USD-M shard independently
    (`binance` vs `binance-usdm` in the shard hash), so the same symbol on both can sit in different shards."""
    cfg = settings.exchanges.binance.spot if market == SPOT else settings.exchanges.binance.usdm
    symbols = cfg.symbols if cfg.enabled else []
    if not symbols:
        return None
    by_shard = group_by_shard(
        EXCHANGE if market == SPOT else "binance-usdm", symbols, settings.sharding.total_shards
    )
    caps = settings.channels.caps_for(EXCHANGE, stream)

    def make_clients(shard: int, out: queue.Queue) -> list[BinanceClient]:
        local_addr = settings.sharding.per_shard_ip_override.get(shard)
        return [
            BinanceClient(market, cfg, settings.connector, by_shard[shard], channels, shard, out, local_addr)
        ]

    return ShardedSource(
        sorted(by_shard),
        make_clients,
        caps.raw_cap,
        settings.connector.batch_size,
        settings.connector.idle_poll_ms,
    )


def binance_spot_source(settings: Settings, channels: set[str], stream: str) -> ShardedSource:
    source = binance_source(settings, market=SPOT, channels=channels, stream=stream)
    if source is None:
        return ShardedSource([], lambda shard, out: [], 1, 1, settings.connector.idle_poll_ms)
    return source


def binance_usdm_source(settings: Settings, channels: set[str], stream: str) -> ShardedSource | None:
    return binance_source(settings, market=USDM, channels=channels, stream=stream)
