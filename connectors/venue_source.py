"""A venue's configured symbols as a sharded Bytewax source: symbols grouped by shard (stable FNV
mapping), each shard's symbols split into connections of at most `per_connection` symbols (the venue's
subscription limit), one client per connection, all feeding the shard's queue."""

from __future__ import annotations

import queue
from collections.abc import Callable

from connectors.backpressure import channel_spec
from connectors.source import Client, ShardedSource
from cryptoflow.config import Settings
from cryptoflow.sharding import group_by_shard

MakeClient = Callable[[list[str], int, queue.Queue, str | None], Client]


def chunks(symbols: list[str], size: int) -> list[list[str]]:
    return [symbols[i : i + size] for i in range(0, len(symbols), size)]


def venue_source(
    settings: Settings, exchange: str, symbols: list[str], per_connection: int, stream: str, make: MakeClient
) -> ShardedSource | None:
    """None when no symbol is configured (the registry then leaves the venue out of the flow)."""
    if not symbols:
        return None
    by_shard = group_by_shard(exchange, symbols, settings.sharding.total_shards)
    spec = channel_spec(settings, exchange, stream)

    def make_clients(shard: int, out: queue.Queue) -> list[Client]:
        local_addr = settings.sharding.per_shard_ip_override.get(shard)
        return [make(group, shard, out, local_addr) for group in chunks(by_shard[shard], per_connection)]

    return ShardedSource(
        sorted(by_shard),
        make_clients,
        spec,
        settings.connector.batch_size,
        settings.connector.idle_poll_ms,
        stream=stream,
        source=exchange,  # names the partitions' channels in metrics
    )
