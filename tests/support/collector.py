"""The Binance spot connector run in-process (no Bytewax) against a simulator: this replica's shards,
one client thread each, sharing one egress manager, all feeding one queue the test drains."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

from connectors.binance.source import binance_spot_shards
from connectors.binance.spot_client import CHANNEL_DEPTH, BinanceSpotClient
from connectors.egress import egress_from_config
from connectors.signals import END
from cryptoflow.config import Settings, load_settings
from cryptoflow.simulator.server import ExchangeSimulator


def settings_for(sim: ExchangeSimulator, **env: str) -> Settings:
    base = {
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__WS_URL": sim.ws_url,
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__REST_URL": sim.http_url,
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__SNAPSHOT_LIMIT": "5000",  # whole book: exact comparisons
        "CRYPTOFLOW_CONNECTOR__RECONNECT_INITIAL_S": "0.05",
        "CRYPTOFLOW_CONNECTOR__RECONNECT_MAX_S": "1.0",
    }
    return load_settings(environ={**base, **{f"CRYPTOFLOW_{k.upper()}": v for k, v in env.items()}})


class InProcessCollector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.shards = binance_spot_shards(settings)
        self.egress = egress_from_config(settings.sharding, self.shards)
        self.queue: queue.Queue = queue.Queue(maxsize=100_000)
        cfg = settings.exchanges.binance.spot
        self.clients = [
            BinanceSpotClient(
                cfg, settings.connector, syms, {CHANNEL_DEPTH}, shard, self.queue, egress=self.egress
            )
            for shard, syms in self.shards.items()
        ]
        self.ended = 0

    def __enter__(self) -> InProcessCollector:
        for client in self.clients:
            client.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self.clients:
            client.stop()

    def pump(self, feed: Callable, until: Callable[[], bool], timeout_s: float) -> bool:
        """Hand events to `feed` until `until()` holds (True) or `timeout_s` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if until():
                return True
            try:
                item = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is END:
                self.ended += 1
                continue
            feed(item)
        return until()

    def alive(self) -> bool:
        return all(
            c._thread is not None and c._thread.is_alive() and not c.finished.is_set() for c in self.clients
        )
