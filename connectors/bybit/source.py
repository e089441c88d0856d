"""Bybit as a sharded Bytewax source: per shard, one client per category and per connection's worth of
symbols (the 21,000-character args budget), for the channels a stream needs."""

from __future__ import annotations

from typing import Any

from connectors.bybit.client import (
    CHANNEL_DEPTH,
    CHANNEL_FUNDING,
    CHANNEL_LIQUIDATIONS,
    CHANNEL_TRADES,
    BybitClient,
    bybit_decoder_parser,
    split_symbols,
)
from connectors.bybit.parsing import EXCHANGE
from connectors.egress import EgressManager
from connectors.registry import owned_shard_groups
from connectors.source import ShardedSource
from connectors.venue_source import PlannedClients, subscribe_source
from cryptoflow.config import Settings

SOURCE = "bybit"  # the registry's name; also the journal's sub-directory

# stream -> (category, channels) pairs it reads
STREAMS: dict[str, list[tuple[str, set[str]]]] = {
    "spot_delta": [("spot", {CHANNEL_DEPTH})],
    "spot_ob": [("spot", {CHANNEL_DEPTH})],
    "futures_delta": [("linear", {CHANNEL_DEPTH})],
    "futures_ob": [("linear", {CHANNEL_DEPTH})],
    "ticks": [("spot", {CHANNEL_TRADES}), ("linear", {CHANNEL_TRADES})],
    "liquidations": [("linear", {CHANNEL_LIQUIDATIONS})],
    "funding": [("linear", {CHANNEL_FUNDING})],
}


def bybit_clients(settings: Settings, wanted: list[tuple[str, set[str]]]) -> PlannedClients | None:
    """This replica's shards for the (category, channels) pairs, and its clients per shard (one per
    category and per connection's worth of symbols); None when no symbol is configured."""
    cfg = settings.exchanges.bybit
    if not cfg.enabled:
        return None
    plan: dict[int, list[tuple[str, list[str], set[str]]]] = {}
    for category, channels in wanted:
        symbols = cfg.spot_symbols if category == "spot" else cfg.linear_symbols
        # spot and linear share exchange symbols: shard on the category-qualified name
        by_shard = owned_shard_groups(settings, EXCHANGE, [f"{category}:{s}" for s in symbols])
        for shard, qualified in by_shard.items():
            names = [q.split(":", 1)[1] for q in qualified]
            for group in split_symbols(
                names, channels, category, cfg.book_depth, cfg.max_args_chars_per_connection
            ):
                plan.setdefault(shard, []).append((category, group, channels))
    if not plan:
        return None

    def make_clients(shard: int, out: Any, egress: EgressManager) -> list[BybitClient]:
        return [
            BybitClient(cfg, settings.connector, category, group, channels, shard, out, egress=egress)
            for category, group, channels in plan[shard]
        ]

    return sorted(plan), make_clients


def bybit_source(settings: Settings, stream: str) -> ShardedSource | None:
    """None when Bybit is disabled, has no symbols for this stream, or does not offer it."""
    planned = bybit_clients(settings, STREAMS[stream]) if stream in STREAMS else None
    if planned is None:
        return None
    shards, make_clients = planned
    return subscribe_source(settings, SOURCE, EXCHANGE, stream, shards, make_clients, bybit_decoder_parser)
