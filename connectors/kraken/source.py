"""Kraken spot v2 as a sharded Bytewax source (`channels`: book and/or trade)."""

from __future__ import annotations

from functools import partial

from connectors.kraken.client import KrakenClient, kraken_parser
from connectors.kraken.parsing import EXCHANGE
from connectors.source import ShardedSource
from connectors.venue_source import venue_source
from cryptoflow.config import Settings

SOURCE = "kraken_spot"  # the registry's name; also the journal's sub-directory


def kraken_source(settings: Settings, *, channels: set[str], stream: str) -> ShardedSource | None:
    cfg = settings.exchanges.kraken
    return venue_source(
        settings, SOURCE, EXCHANGE, cfg.symbols if cfg.enabled else [], cfg.max_symbols_per_connection, stream,
        lambda symbols, shard, out, egress: KrakenClient(
            cfg, settings.connector, symbols, channels, shard, out, egress=egress
        ),
        partial(kraken_parser, cfg),
    )  # fmt: skip
