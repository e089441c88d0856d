"""Kraken spot v2 as a sharded Bytewax source (`channels`: book and/or trade)."""

from __future__ import annotations

from functools import partial

from connectors.kraken.client import KrakenClient, kraken_parser
from connectors.kraken.parsing import EXCHANGE
from connectors.source import ShardedSource
from connectors.venue_source import PlannedClients, subscribe_source, venue_clients
from cryptoflow.config import Settings

SOURCE = "kraken_spot"  # the registry's name; also the journal's sub-directory


def kraken_clients(settings: Settings, channels: set[str]) -> PlannedClients | None:
    """This replica's shards and their clients for `channels`; None when nothing is configured."""
    cfg = settings.exchanges.kraken
    return venue_clients(
        settings, EXCHANGE, cfg.symbols if cfg.enabled else [], cfg.max_symbols_per_connection,
        lambda symbols, shard, out, egress: KrakenClient(
            cfg, settings.connector, symbols, channels, shard, out, egress=egress
        ),
    )  # fmt: skip


def kraken_source(settings: Settings, *, channels: set[str], stream: str) -> ShardedSource | None:
    planned = kraken_clients(settings, channels)
    if planned is None:
        return None
    return subscribe_source(
        settings, SOURCE, EXCHANGE, stream, *planned, partial(kraken_parser, settings.exchanges.kraken)
    )
