"""Bybit as a sharded Bytewax source: per shard, one client per category and per connection's worth of
symbols (the 21,000-character args budget), for the channels a stream needs."""

from __future__ import annotations

import queue

from connectors.backpressure import channel_spec
from connectors.bybit.client import (
    CHANNEL_DEPTH,
    CHANNEL_FUNDING,
    CHANNEL_LIQUIDATIONS,
    CHANNEL_TRADES,
    BybitClient,
    split_symbols,
)
from connectors.bybit.parsing import EXCHANGE
from connectors.source import ShardedSource
from cryptoflow.config import Settings
from cryptoflow.sharding import group_by_shard

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


def bybit_source(settings: Settings, stream: str) -> ShardedSource | None:
    """None when Bybit is disabled, has no symbols for this stream, or does not offer it."""
    cfg = settings.exchanges.bybit
    if not cfg.enabled or stream not in STREAMS:
        return None
    total = settings.sharding.total_shards
    plan: dict[int, list[tuple[str, list[str], set[str]]]] = {}
    for category, channels in STREAMS[stream]:
        symbols = cfg.spot_symbols if category == "spot" else cfg.linear_symbols
        # spot and linear share exchange symbols: shard on the category-qualified name
        by_shard = group_by_shard(EXCHANGE, [f"{category}:{s}" for s in symbols], total)
        for shard, qualified in by_shard.items():
            names = [q.split(":", 1)[1] for q in qualified]
            for group in split_symbols(
                names, channels, category, cfg.book_depth, cfg.max_args_chars_per_connection
            ):
                plan.setdefault(shard, []).append((category, group, channels))
    if not plan:
        return None
    spec = channel_spec(settings, EXCHANGE, stream)

    def make_clients(shard: int, out: queue.Queue) -> list[BybitClient]:
        local_addr = settings.sharding.per_shard_ip_override.get(shard)
        return [
            BybitClient(cfg, settings.connector, category, group, channels, shard, out, local_addr)
            for category, group, channels in plan[shard]
        ]

    return ShardedSource(sorted(plan), make_clients, spec, settings.connector.batch_size,
                         settings.connector.idle_poll_ms, stream=stream, source=EXCHANGE)  # fmt: skip
