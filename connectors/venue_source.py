"""A subscribe venue's configured symbols as a sharded Bytewax source: symbols grouped by shard (stable FNV
mapping, this replica's shards only), each shard's symbols split into connections of at most
`per_connection` symbols (the venue's subscription limit), one client per connection, all feeding the
shard's queue or journal; every client of the source shares one egress manager (IP per shard, caps,
429 rotation, per-IP reconnect budget). With the journal enabled, a `SubscribeDecoder` decodes it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from connectors.egress import EgressManager, egress_from_config
from connectors.registry import owned_shard_groups
from connectors.source import Client, ShardedSource, replay_has_source
from connectors.subscribe_client import InstrumentMap, SubscribeDecoder
from cryptoflow.config import Settings

log = logging.getLogger(__name__)

# (symbols, shard, out: queue.Queue | JournalWriter, egress) -> client
MakeClient = Callable[[list[str], int, Any, EgressManager], Client]
# shard -> the decoder's parser factory (journal key, instrument map) -> parser
ParserFactory = Callable[[int], Callable[[str, InstrumentMap], Any]]


def chunks(symbols: list[str], size: int) -> list[list[str]]:
    return [symbols[i : i + size] for i in range(0, len(symbols), size)]


def subscribe_source(
    settings: Settings,
    name: str,
    exchange: str,
    stream: str,
    shards: list[int],
    make_clients: Callable[[int, Any, EgressManager], list[Client]],
    parser_for: ParserFactory,
) -> ShardedSource | None:
    """The source of `shards` (None when replaying a capture that does not hold `name`)."""
    if not replay_has_source(settings.journal, name):
        log.warning("journal.replay_dir %s holds no %s capture; source skipped", settings.journal.replay_dir,
                    name)  # fmt: skip
        return None
    egress = egress_from_config(settings.sharding, shards)
    caps = settings.channels.caps_for(exchange, stream)
    return ShardedSource(
        sorted(shards),
        lambda shard, out: make_clients(shard, out, egress),
        caps.raw_cap,
        settings.connector.batch_size,
        settings.connector.idle_poll_ms,
        journal=settings.journal,
        make_decoder=lambda shard, state: SubscribeDecoder(exchange, shard, state, parser_for(shard)),
        stream=stream,
        source=name,
    )


def venue_source(
    settings: Settings,
    name: str,
    exchange: str,
    symbols: list[str],
    per_connection: int,
    stream: str,
    make: MakeClient,
    parser_for: ParserFactory,
) -> ShardedSource | None:
    """None when no symbol is configured (the registry then leaves the venue out of the flow)."""
    if not symbols:
        return None
    by_shard = owned_shard_groups(settings, exchange, symbols)

    def make_clients(shard: int, out: Any, egress: EgressManager) -> list[Client]:
        return [make(group, shard, out, egress) for group in chunks(by_shard[shard], per_connection)]

    return subscribe_source(settings, name, exchange, stream, list(by_shard), make_clients, parser_for)
