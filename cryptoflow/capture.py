"""`cryptoflow capture`: record raw exchange data into journal directories, no dataflow involved.

Writes exactly the format the dataflows' journals use (`<out>/<source>/<partition>/*.seg`), with the
same clients, shards and egress as the flows, so a capture can be kept as raw data or replayed through
any flow with `journal.replay_dir: <out>` (each flow keeps the events of its stream). Binance journals
raw frames, REST snapshot bodies and exchangeInfo; the subscribe venues (Bybit, OKX, Coinbase, Kraken)
every frame of each connection, their instrument map and the connection gaps they declared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.binance.client import (
    CHANNEL_BOOK_TICKER,
    CHANNEL_DEPTH,
    CHANNEL_FUNDING,
    CHANNEL_LIQUIDATIONS,
    CHANNEL_TRADES,
    SPOT,
    USDM,
    BinanceClient,
)
from connectors.binance.source import binance_shards, source_name
from connectors.bybit.source import SOURCE as BYBIT
from connectors.bybit.source import bybit_clients
from connectors.coinbase.client import CHANNEL_LEVEL2
from connectors.coinbase.client import CHANNEL_TRADES as COINBASE_TRADES
from connectors.coinbase.source import SOURCE as COINBASE
from connectors.coinbase.source import coinbase_clients
from connectors.egress import EgressManager, egress_from_config
from connectors.journal import JournalWriter
from connectors.kraken.client import CHANNEL_BOOK, CHANNEL_TRADE
from connectors.kraken.source import SOURCE as KRAKEN
from connectors.kraken.source import kraken_clients
from connectors.okx.source import SOURCE as OKX
from connectors.okx.source import okx_clients
from connectors.venue_source import PlannedClients
from cryptoflow.config import Settings
from cryptoflow.model import Market
from cryptoflow.sharding import partition_name

log = logging.getLogger(__name__)

CHANNELS = {
    "depth": CHANNEL_DEPTH,
    "trades": CHANNEL_TRADES,
    "bookTicker": CHANNEL_BOOK_TICKER,  # Binance only
    "liquidations": CHANNEL_LIQUIDATIONS,  # Binance USD-M, Bybit linear, OKX derivatives
    "funding": CHANNEL_FUNDING,  # Binance USD-M, Bybit linear, OKX swaps
}
_ALL_MARKETS = frozenset({Market.SPOT, Market.PERP, Market.FUTURE})


def _binance(market: str) -> Callable[[Settings, set[str]], PlannedClients | None]:
    def plan(settings: Settings, channels: set[str]) -> PlannedClients | None:
        cfg = settings.exchanges.binance.spot if market == SPOT else settings.exchanges.binance.usdm
        by_shard = binance_shards(settings, market)
        if not by_shard:
            return None

        def make(shard: int, out: Any, egress: EgressManager) -> list[BinanceClient]:
            return [BinanceClient(market, cfg, settings.connector, by_shard[shard], channels, shard, out,
                                  egress=egress)]  # fmt: skip

        return sorted(by_shard), make

    return plan


def _bybit(settings: Settings, channels: set[str]) -> PlannedClients | None:
    linear = channels & {CHANNEL_DEPTH, CHANNEL_TRADES, CHANNEL_FUNDING, CHANNEL_LIQUIDATIONS}
    spot = channels & {CHANNEL_DEPTH, CHANNEL_TRADES}
    return bybit_clients(settings, [(c, ch) for c, ch in (("spot", spot), ("linear", linear)) if ch])


def _okx(settings: Settings, channels: set[str]) -> PlannedClients | None:
    wanted = channels & {CHANNEL_DEPTH, CHANNEL_TRADES, CHANNEL_FUNDING, CHANNEL_LIQUIDATIONS}
    return okx_clients(settings, _ALL_MARKETS, wanted) if wanted else None


def _coinbase(settings: Settings, channels: set[str]) -> PlannedClients | None:
    wanted = {
        v for k, v in ((CHANNEL_DEPTH, CHANNEL_LEVEL2), (CHANNEL_TRADES, COINBASE_TRADES)) if k in channels
    }
    return coinbase_clients(settings, wanted) if wanted else None


def _kraken(settings: Settings, channels: set[str]) -> PlannedClients | None:
    wanted = {v for k, v in ((CHANNEL_DEPTH, CHANNEL_BOOK), (CHANNEL_TRADES, CHANNEL_TRADE)) if k in channels}
    return kraken_clients(settings, wanted) if wanted else None


# --venues name (as `cryptoflow simulate --venues`) -> (source name = journal sub-directory, planner)
VENUES: dict[str, tuple[str, Callable[[Settings, set[str]], PlannedClients | None]]] = {
    "binance": (source_name(SPOT), _binance(SPOT)),
    "binance-usdm": (source_name(USDM), _binance(USDM)),
    "bybit": (BYBIT, _bybit),
    "okx": (OKX, _okx),
    "coinbase": (COINBASE, _coinbase),
    "kraken": (KRAKEN, _kraken),
}


def run_capture(
    settings: Settings,
    out: Path,
    channels: set[str],
    duration_s: float | None = None,
    venues: list[str] | None = None,
) -> int:
    """Capture `venues` (default: every enabled venue with symbols) until every client finished
    (replay end), `duration_s` passed, or Ctrl-C. Layout: `<out>/<source>/<partition>`
    (`binance_spot/shard-00003`, `okx/shard-00001`)."""
    unknown = sorted(set(venues or []) - set(VENUES))
    if unknown:
        log.error("capture: unknown venue(s) %s; use %s", unknown, ",".join(VENUES))
        return 2
    writers: list[JournalWriter] = []
    clients: list[Any] = []
    for venue in venues or list(VENUES):
        source, plan = VENUES[venue]
        planned = plan(settings, channels)
        if planned is None:
            if venues:
                log.warning("capture: %s has no symbols configured (or is disabled) for %s", venue, channels)
            continue
        shards, make_clients = planned
        egress = egress_from_config(settings.sharding, shards)  # one per source, as in the flows
        for shard in shards:
            writer = JournalWriter(
                out / source / partition_name(shard), settings.journal.fsync,
                settings.journal.fsync_interval_ms, settings.journal.segment_mb * 1024 * 1024,
                name=f"capture/{source}/{partition_name(shard)}",
            )  # fmt: skip
            writers.append(writer)
            clients.extend(make_clients(shard, writer, egress))
    if not clients:
        log.error("capture: no symbols configured")
        return 2
    deadline = time.monotonic() + duration_s if duration_s else None
    for client in clients:
        client.start()
    try:
        while not all(c.finished.is_set() for c in clients):
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        for client in clients:
            client.stop()
        for writer in writers:
            writer.close()
    total = sum(w.next_offset for w in writers)
    log.info("capture: %d records in %d shard journal(s) under %s", total, len(writers), out)
    print(f"captured {total} records into {len(writers)} shard journal(s) under {out}")
    return 0
