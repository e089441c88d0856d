"""Which venues offer which stream, for the dataflows: `sources_for(settings, stream)`.

Adapter until the shared registry of the dataflows lands: each venue module exposes
`<venue>_source(settings, stream) -> ShardedSource | None` (None = disabled, no symbols, or the venue
does not offer the stream); a dataflow adds one `op.input` per non-None source and merges them.
Streams: spot_delta, spot_ob, futures_delta, futures_ob, ticks, liquidations, funding.
"""

from __future__ import annotations

from collections.abc import Callable

from connectors.bybit.source import bybit_source
from connectors.okx.source import okx_source
from connectors.source import ShardedSource
from cryptoflow.config import Settings

VENUE_SOURCES: dict[str, Callable[[Settings, str], ShardedSource | None]] = {
    "bybit": bybit_source,
    "okx": okx_source,
}


def sources_for(settings: Settings, stream: str) -> dict[str, ShardedSource]:
    """venue -> its source for `stream`, for every configured venue that offers it."""
    out = {}
    for venue, factory in VENUE_SOURCES.items():
        source = factory(settings, stream)
        if source is not None:
            out[venue] = source
    return out
