"""Binance spot and USD-M as sharded Bytewax sources: this replica's shards of the configured symbols
(`connectors.registry.owned_shard_groups`), one client per shard (which opens as many connections as its
streams need), all clients of a market sharing one egress manager (IP per shard, caps, 429 rotation,
per-IP reconnect budget)."""

from __future__ import annotations

import logging
from typing import Any

from connectors.backpressure import channel_spec
from connectors.binance.client import SPOT, USDM, BinanceClient
from connectors.binance.decode import BinanceDecoder
from connectors.egress import egress_from_config
from connectors.registry import owned_shard_groups
from connectors.source import ShardedSource, replay_has_source
from cryptoflow.config import Settings

EXCHANGE = "binance"
# Streams whose operator (`operators.delta_sync.DeltaSyncLogic`) takes a socket read as column groups
# (`cryptoflow.level_block.DepthRead`); every other stream gets one `RawEvent` per frame.
COLUMNAR_STREAMS = frozenset({"spot_delta", "futures_delta"})
log = logging.getLogger(__name__)


def source_name(market: str) -> str:
    """The registry's name of a Binance market's source; also its journal sub-directory."""
    return f"{EXCHANGE}_{market}"


def binance_shards(settings: Settings, market: str) -> dict[int, list[str]]:
    """Shard -> symbols for the shards this replica owns (and that hold at least one symbol). Spot and
    USD-M shard independently (`binance` vs `binance-usdm` in the shard hash), so the same symbol on both
    can sit in different shards."""
    cfg = settings.exchanges.binance.spot if market == SPOT else settings.exchanges.binance.usdm
    symbols = cfg.symbols if cfg.enabled else []
    return owned_shard_groups(settings, EXCHANGE if market == SPOT else "binance-usdm", symbols)


def binance_spot_shards(settings: Settings) -> dict[int, list[str]]:
    return binance_shards(settings, SPOT)


def binance_source(
    settings: Settings, *, market: str, channels: set[str], stream: str
) -> ShardedSource | None:
    """None when the market is disabled or has no symbols; an empty source when it has symbols but this
    replica owns none of their shards (the flow still runs, like its peers)."""
    cfg = settings.exchanges.binance.spot if market == SPOT else settings.exchanges.binance.usdm
    if not (cfg.symbols if cfg.enabled else []):
        return None
    name = source_name(market)
    if not replay_has_source(settings.journal, name):
        log.warning(
            "journal.replay_dir %s holds no %s capture; source skipped", settings.journal.replay_dir, name
        )
        return None
    by_shard = binance_shards(settings, market)
    spec = channel_spec(settings, EXCHANGE, stream)
    egress = egress_from_config(settings.sharding, by_shard)

    columnar = stream in COLUMNAR_STREAMS

    def make_clients(shard: int, out: Any) -> list[BinanceClient]:  # a queue.Queue or a JournalWriter
        return [
            BinanceClient(
                market, cfg, settings.connector, by_shard[shard], channels, shard, out, egress=egress,
                columnar=columnar,
            )
        ]  # fmt: skip

    return ShardedSource(
        sorted(by_shard),
        make_clients,
        spec,
        settings.connector.batch_size,
        settings.connector.idle_poll_ms,
        journal=settings.journal,
        make_decoder=lambda shard, state: BinanceDecoder(shard, state, market, by_shard[shard]),
        stream=stream,
        source=name,
        wake_on_data=settings.connector.wake_on_data,
    )


def binance_spot_source(settings: Settings, channels: set[str], stream: str) -> ShardedSource:
    source = binance_source(settings, market=SPOT, channels=channels, stream=stream)
    if source is None:
        return ShardedSource([], lambda shard, out: [], 1, 1, settings.connector.idle_poll_ms)
    return source


def binance_usdm_source(settings: Settings, channels: set[str], stream: str) -> ShardedSource | None:
    return binance_source(settings, market=USDM, channels=channels, stream=stream)
