"""A subscribe venue's configured symbols as a sharded Bytewax source: symbols grouped by shard (stable FNV
mapping, this replica's shards only), each shard's symbols split into connections of at most
`per_connection` symbols (the venue's subscription limit), one client per connection, all feeding the
shard's queue or journal; every client of the source shares one egress manager (IP per shard, caps,
429 rotation, per-IP reconnect budget). With the journal enabled, a `SubscribeDecoder` decodes it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from connectors.backpressure import channel_spec
from connectors.egress import EgressManager, egress_from_config
from connectors.registry import owned_shard_groups
from connectors.source import Client, ShardedSource, replay_has_source
from connectors.subscribe_client import InstrumentMap, SubscribeDecoder
from cryptoflow.config import Settings
from cryptoflow.model import Kind, Market, RawEvent

log = logging.getLogger(__name__)

# (symbols, shard, out: queue.Queue | JournalWriter, egress) -> client
MakeClient = Callable[[list[str], int, Any, EgressManager], Client]
# a source's shards, and its clients per shard (shard, out, egress) -> clients
PlannedClients = tuple[list[int], Callable[[int, Any, EgressManager], list[Client]]]
# shard -> the decoder's parser factory (journal key, instrument map) -> parser
ParserFactory = Callable[[int], Callable[[str, InstrumentMap], Any]]


_BOOK_KINDS = frozenset({Kind.DEPTH_SNAPSHOT, Kind.DEPTH_DIFF, Kind.BOOK_TICKER, Kind.CONNECTION_GAP})
_SPOT, _DERIVATIVES = frozenset({Market.SPOT}), frozenset({Market.PERP, Market.FUTURE})
# stream -> (event kinds, markets or None for all) it consumes. A capture holds every channel of a venue
# (`cryptoflow capture`); replaying it through one stream's flow keeps only that stream's events.
STREAM_EVENTS: dict[str, tuple[frozenset[Kind], frozenset[str] | None]] = {
    "spot_delta": (_BOOK_KINDS, _SPOT),
    "spot_ob": (_BOOK_KINDS, _SPOT),
    "futures_delta": (_BOOK_KINDS, _DERIVATIVES),
    "futures_ob": (_BOOK_KINDS, _DERIVATIVES),
    "ticks": (frozenset({Kind.TRADE}), None),
    "liquidations": (frozenset({Kind.LIQUIDATION}), None),
    "funding": (frozenset({Kind.FUNDING}), None),
}


def stream_filter(stream: str) -> Callable[[RawEvent], bool] | None:
    """Whether an event belongs to `stream` (None: keep everything, e.g. an unknown stream)."""
    if stream not in STREAM_EVENTS:
        return None
    kinds, markets = STREAM_EVENTS[stream]
    return lambda e: e.kind in kinds and (markets is None or e.market in markets)


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
    return ShardedSource(
        sorted(shards),
        lambda shard, out: make_clients(shard, out, egress),
        channel_spec(settings, exchange, stream),  # caps and backpressure policy from `channels`
        settings.connector.batch_size,
        settings.connector.idle_poll_ms,
        journal=settings.journal,
        make_decoder=lambda shard, state: SubscribeDecoder(
            exchange, shard, state, parser_for(shard), stream_filter(stream)
        ),
        stream=stream,
        source=name,
        wake_on_data=settings.connector.wake_on_data,
    )


def venue_clients(
    settings: Settings, exchange: str, symbols: list[str], per_connection: int, make: MakeClient
) -> PlannedClients | None:
    """This replica's shards of `symbols` and the clients per shard (one per `per_connection` symbols);
    None when no symbol is configured."""
    if not symbols:
        return None
    by_shard = owned_shard_groups(settings, exchange, symbols)

    def make_clients(shard: int, out: Any, egress: EgressManager) -> list[Client]:
        return [make(group, shard, out, egress) for group in chunks(by_shard[shard], per_connection)]

    return sorted(by_shard), make_clients
