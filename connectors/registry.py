"""Which venue clients feed which stream: the registry every dataflow reads its inputs from.

A *stream* is one of `STREAMS` (one dataflow and table each). A venue offers a stream by registering a
source factory under a source name (`<exchange>_<market>`, e.g. `binance_usdm`, `bybit_linear`):

    # connectors/<venue>/streams.py
    from connectors.registry import register

    def _ticks(settings: Settings) -> ShardedSource | None:   # None = not configured / disabled
        ...
    register("ticks", "bybit_spot", _ticks)

and by adding its module to `VENUE_MODULES` below (imported on first use, so registering needs no
other import). A factory returns a Bytewax source of `cryptoflow.model.RawEvent`s holding the event
kinds the stream consumes (depth snapshots/diffs and bookTickers for `*_delta`/`*_ob`, `TRADE` for
`ticks`, `LIQUIDATION` for `liquidations`, `FUNDING` for `funding`), or None when the venue is not
configured, so a flow runs over "every configured exchange that offers it".

Each source gets its own pipeline in the flow (input -> key -> stateful logic -> sink steps whose ids
are prefixed with the source name): sources never share a Bytewax stream, so each sink partition's
per-shard offset watermark (exactly-once) only ever sees one source's shard numbers.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from bytewax.inputs import Source

from cryptoflow.config import Settings

log = logging.getLogger(__name__)

STREAMS = ("ticks", "spot_delta", "spot_ob", "futures_delta", "futures_ob", "liquidations", "funding")
VENUE_MODULES = (
    "connectors.binance.streams",
    "connectors.bybit.streams",
    "connectors.okx.streams",
    "connectors.coinbase.streams",
    "connectors.kraken.streams",
)

SourceFactory = Callable[[Settings], Source | None]
_REGISTRY: dict[str, dict[str, SourceFactory]] = {stream: {} for stream in STREAMS}
_loaded = False


def register(stream: str, name: str, factory: SourceFactory) -> None:
    """Declare that source `name` offers `stream`; registering the same name again replaces it."""
    if stream not in _REGISTRY:
        raise ValueError(f"unknown stream {stream!r}; streams are {', '.join(STREAMS)}")
    _REGISTRY[stream][name] = factory


def _load_venues() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in VENUE_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the venue module exists but something it imports is missing
                raise
            log.debug("no stream registrations in %s", module)


def offered(stream: str) -> list[str]:
    """Source names registered for a stream (configured or not)."""
    _load_venues()
    return sorted(_REGISTRY[stream])


def sources_for(settings: Settings, stream: str) -> list[tuple[str, Source]]:
    """(source name, source) for every configured source that offers `stream`, in name order."""
    _load_venues()
    if stream not in _REGISTRY:
        raise ValueError(f"unknown stream {stream!r}")
    out = []
    for name in sorted(_REGISTRY[stream]):
        source = _REGISTRY[stream][name](settings)
        if source is not None:
            out.append((name, source))
    return out
