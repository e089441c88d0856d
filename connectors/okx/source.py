"""OKX as a sharded Bytewax source: per shard, one `/ws/v5/public` client per group of instruments
(`max_args_per_connection`), collecting the markets and channels a stream needs."""

from __future__ import annotations

import queue

from connectors.backpressure import channel_spec
from connectors.okx.client import (
    CHANNEL_DEPTH,
    CHANNEL_FUNDING,
    CHANNEL_LIQUIDATIONS,
    CHANNEL_TRADES,
    OkxClient,
)
from connectors.okx.parsing import EXCHANGE
from connectors.source import ShardedSource
from cryptoflow.config import Settings
from cryptoflow.model import Market
from cryptoflow.sharding import group_by_shard

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


def okx_source(settings: Settings, stream: str) -> ShardedSource | None:
    cfg = settings.exchanges.okx
    if not cfg.enabled or not cfg.symbols or stream not in STREAMS:
        return None
    markets, channels = STREAMS[stream]
    by_shard = group_by_shard(EXCHANGE, cfg.symbols, settings.sharding.total_shards)
    per_conn = max(1, cfg.max_args_per_connection // 4)  # up to 3 channels per instrument + liquidations
    if CHANNEL_DEPTH in channels:
        per_conn = min(per_conn, cfg.max_books_per_connection)
    spec = channel_spec(settings, EXCHANGE, stream)

    def make_clients(shard: int, out: queue.Queue) -> list[OkxClient]:
        local_addr = settings.sharding.per_shard_ip_override.get(shard)
        ids = by_shard[shard]
        return [
            OkxClient(
                cfg, settings.connector, ids[i : i + per_conn], channels, shard, out, local_addr, markets
            )
            for i in range(0, len(ids), per_conn)
        ]

    return ShardedSource(sorted(by_shard), make_clients, spec, settings.connector.batch_size,
                         settings.connector.idle_poll_ms, stream=stream, source=EXCHANGE)  # fmt: skip
