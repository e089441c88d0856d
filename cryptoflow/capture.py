"""`cryptoflow capture`: record raw exchange data into journal directories, no dataflow involved.

Writes exactly the format the dataflows' journals use (`<out>/<source>/<partition>/*.seg`: raw
WebSocket frames, REST snapshot bodies and the instrument list, each with ingest time, run id and kind),
so a capture can be kept as raw data or replayed through a flow with `journal.replay_dir: <out>`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

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
from connectors.binance.source import EXCHANGE, source_name
from connectors.journal import JournalWriter
from cryptoflow.config import Settings
from cryptoflow.sharding import group_by_shard, partition_name

log = logging.getLogger(__name__)

CHANNELS = {
    "depth": CHANNEL_DEPTH,
    "trades": CHANNEL_TRADES,
    "bookTicker": CHANNEL_BOOK_TICKER,
    "liquidations": CHANNEL_LIQUIDATIONS,  # USD-M only
    "funding": CHANNEL_FUNDING,  # USD-M only
}


def run_capture(settings: Settings, out: Path, channels: set[str], duration_s: float | None = None) -> int:
    """Capture every enabled Binance market (spot, USD-M) until every client finished (replay end),
    `duration_s` passed, or Ctrl-C. Layout: `<out>/<source>/<partition>` (`binance_spot/shard-00003`)."""
    writers, clients = [], []
    for market in (SPOT, USDM):
        cfg = settings.exchanges.binance.spot if market == SPOT else settings.exchanges.binance.usdm
        hashed = EXCHANGE if market == SPOT else "binance-usdm"  # as connectors.binance.source shards
        by_shard = group_by_shard(hashed, cfg.symbols if cfg.enabled else [], settings.sharding.total_shards)
        for shard, symbols in by_shard.items():
            writer = JournalWriter(
                out / source_name(market) / partition_name(shard), settings.journal.fsync,
                settings.journal.fsync_interval_ms, settings.journal.segment_mb * 1024 * 1024,
            )  # fmt: skip
            writers.append(writer)
            local_addr = settings.sharding.per_shard_ip_override.get(shard)
            clients.append(
                BinanceClient(market, cfg, settings.connector, symbols, channels, shard, writer, local_addr)
            )
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
