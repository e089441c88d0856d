"""Bybit and OKX clients pointed at a running simulator, and running a set of clients to their end:
the setup the subscribe-venue integration tests share."""

from __future__ import annotations

import queue
from typing import Any

from connectors.bybit.client import BybitClient
from connectors.okx.client import OkxClient
from connectors.signals import END
from cryptoflow.config import BybitConfig, ConnectorConfig, OkxConfig
from cryptoflow.model import RawEvent
from cryptoflow.simulator.server import ExchangeSimulator

CONNECTOR = ConnectorConfig(stop_at_replay_end=True, reconnect_initial_s=0.05)  # ends with the replay
ALL = {"depth", "trades", "funding", "liquidations"}


def drain(q: queue.Queue, clients: int) -> list[RawEvent]:
    """Events from `q` until each of `clients` clients has ended."""
    events, ended = [], 0
    while ended < clients:
        item = q.get(timeout=60)
        if item is END:
            ended += 1
        else:
            events.append(item)
    return events


def run_to_end(clients: list[Any], q: queue.Queue) -> list[RawEvent]:
    """Start `clients` (all writing to `q`), collect their events until every one ended, stop them."""
    for client in clients:
        client.start()
    try:
        return drain(q, len(clients))
    finally:
        for client in clients:
            client.stop()


def bybit_clients(
    sim: ExchangeSimulator,
    symbols: dict[str, list[str]],
    channels: set[str],
    q: queue.Queue,
    **cfg_fields: Any,
) -> list[BybitClient]:
    """One client per category (`spot`, `linear`) of `symbols`, on shard 0."""
    cfg = BybitConfig(ws_url=sim.ws_url, rest_url=sim.http_url, **cfg_fields)
    return [
        BybitClient(cfg, CONNECTOR, category, names, channels, 0, q) for category, names in symbols.items()
    ]


def okx_client(
    sim: ExchangeSimulator, inst_ids: list[str], channels: set[str], q: queue.Queue, **cfg_fields: Any
) -> OkxClient:
    """One OKX client for `inst_ids` on shard 0."""
    cfg = OkxConfig(ws_url=sim.ws_url, rest_url=sim.http_url, **cfg_fields)
    return OkxClient(cfg, CONNECTOR, inst_ids, channels, 0, q)
