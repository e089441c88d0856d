"""OKX as a sharded Bytewax source: per shard, one `/ws/v5/public` client per group of instruments
(as many as `max_args_per_connection` / `max_books_per_connection` require: `plan_connections`),
collecting the markets and channels a stream needs."""

from __future__ import annotations

from typing import Any

from connectors.egress import EgressManager
from connectors.okx.client import (
    CHANNEL_DEPTH,
    CHANNEL_FUNDING,
    CHANNEL_LIQUIDATIONS,
    CHANNEL_TRADES,
    OkxClient,
    okx_parser,
    plan_connections,
)
from connectors.okx.parsing import EXCHANGE
from connectors.registry import owned_shard_groups
from connectors.source import ShardedSource
from connectors.venue_source import PlannedClients, subscribe_source
from cryptoflow.config import Settings
from cryptoflow.model import Market

SOURCE = "okx"  # the registry's name; also the journal's sub-directory

_DERIVATIVES = frozenset({Market.PERP, Market.FUTURE})
_ALL = frozenset({Market.SPOT, Market.PERP, Market.FUTURE})

# stream -> (markets, channels)
STREAMS: dict[str, tuple[frozenset[str], set[str]]] = {
    "spot_delta": (frozenset({Market.SPOT}), {CHANNEL_DEPTH}),
    "spot_ob": (frozenset({Market.SPOT}), {CHANNEL_DEPTH}),
    "futures_delta": (_DERIVATIVES, {CHANNEL_DEPTH}),
    "futures_ob": (_DERIVATIVES, {CHANNEL_DEPTH}),
    "ticks": (_ALL, {CHANNEL_TRADES}),
    "liquidations": (_DERIVATIVES, {CHANNEL_LIQUIDATIONS}),
    "funding": (frozenset({Market.PERP}), {CHANNEL_FUNDING}),
}


def okx_clients(settings: Settings, markets: frozenset[str], channels: set[str]) -> PlannedClients | None:
    """This replica's shards and its clients per shard (one per group of instruments); None when OKX
    is disabled or has no instruments."""
    cfg = settings.exchanges.okx
    if not cfg.enabled or not cfg.symbols:
        return None
    by_shard = owned_shard_groups(settings, EXCHANGE, cfg.symbols)
    plan = {shard: plan_connections(ids, channels, markets, cfg) for shard, ids in by_shard.items()}

    def make_clients(shard: int, out: Any, egress: EgressManager) -> list[OkxClient]:
        return [
            OkxClient(cfg, settings.connector, group, channels, shard, out, markets=markets, egress=egress)
            for group in plan[shard]
        ]

    return sorted(by_shard), make_clients


def okx_source(settings: Settings, stream: str) -> ShardedSource | None:
    planned = okx_clients(settings, *STREAMS[stream]) if stream in STREAMS else None
    if planned is None:
        return None
    shards, make_clients = planned
    return subscribe_source(settings, SOURCE, EXCHANGE, stream, shards, make_clients, okx_parser)
