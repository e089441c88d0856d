"""`cryptoflow capture`: record raw exchange data into journal directories, no dataflow involved.

Writes exactly the format the dataflows' journals use (`<out>/<partition>/*.seg`: raw WebSocket frames,
REST snapshot bodies and the instrument list, each with ingest time, connection id and kind), so a
capture can be kept as raw data or replayed through a flow with `journal.replay_dir: <out>`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from connectors.binance.source import EXCHANGE
from connectors.binance.spot_client import CHANNEL_DEPTH, CHANNEL_TRADES, BinanceSpotClient
from connectors.journal import JournalWriter
from cryptoflow.config import Settings
from cryptoflow.sharding import group_by_shard, partition_name

log = logging.getLogger(__name__)

CHANNELS = {"depth": CHANNEL_DEPTH, "trades": CHANNEL_TRADES}


def run_capture(settings: Settings, out: Path, channels: set[str], duration_s: float | None = None) -> int:
    """Capture until every client finished (replay end), `duration_s` passed, or Ctrl-C."""
    cfg = settings.exchanges.binance.spot
    by_shard = group_by_shard(EXCHANGE, cfg.symbols if cfg.enabled else [], settings.sharding.total_shards)
    if not by_shard:
        log.error("capture: no symbols configured")
        return 2
    writers, clients = [], []
    for shard, symbols in by_shard.items():
        writer = JournalWriter(
            out / partition_name(shard), settings.journal.fsync, settings.journal.fsync_interval_ms,
            settings.journal.segment_mb * 1024 * 1024,
        )  # fmt: skip
        writers.append(writer)
        local_addr = settings.sharding.per_shard_ip_override.get(shard)
        clients.append(
            BinanceSpotClient(cfg, settings.connector, symbols, channels, shard, writer, local_addr)
        )
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
