"""Binance spot and USD-M as sharded Bytewax sources: the configured symbols grouped by shard, one client
per shard (which opens as many connections as its streams need)."""

from __future__ import annotations

import logging
from typing import Any

from connectors.binance.client import SPOT, USDM, BinanceClient
from connectors.binance.decode import BinanceDecoder
from connectors.source import ShardedSource, replay_has_source
from cryptoflow.config import Settings
from cryptoflow.sharding import group_by_shard

EXCHANGE = "binance"
log = logging.getLogger(__name__)


def source_name(market: str) -> str:
    """The registry's name of a Binance market's source; also its journal sub-directory."""
    return f"{EXCHANGE}_{market}"


def binance_source(
    settings: Settings, *, market: str, channels: set[str], stream: str
) -> ShardedSource | None:
    """None when the market is disabled or has no symbols. Spot and USD-M shard independently
    (`binance` vs `binance-usdm` in the shard hash), so the same symbol on both can sit in different shards."""
    cfg = settings.exchanges.binance.spot if market == SPOT else settings.exchanges.binance.usdm
    symbols = cfg.symbols if cfg.enabled else []
    if not symbols:
        return None
    name = source_name(market)
    if not replay_has_source(settings.journal, name):
        log.warning(
            "journal.replay_dir %s holds no %s capture; source skipped", settings.journal.replay_dir, name
        )
        return None
    by_shard = group_by_shard(
        EXCHANGE if market == SPOT else "binance-usdm", symbols, settings.sharding.total_shards
    )
    caps = settings.channels.caps_for(EXCHANGE, stream)

    def make_clients(shard: int, out: Any) -> list[BinanceClient]:  # a queue.Queue or a JournalWriter
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
        journal=settings.journal,
        make_decoder=lambda shard, state: BinanceDecoder(shard, state, market, by_shard[shard]),
        stream=stream,
        source=name,
    )


def binance_spot_source(settings: Settings, channels: set[str], stream: str) -> ShardedSource:
    source = binance_source(settings, market=SPOT, channels=channels, stream=stream)
    if source is None:
        return ShardedSource([], lambda shard, out: [], 1, 1, settings.connector.idle_poll_ms)
    return source


def binance_usdm_source(settings: Settings, channels: set[str], stream: str) -> ShardedSource | None:
    return binance_source(settings, market=USDM, channels=channels, stream=stream)
