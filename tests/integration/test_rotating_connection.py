"""`RotatingConnection` over real sockets against a small live-like server: one update counter for every
connection (a connection sees updates from the moment it subscribes), a `serverShutdown` on the first
connection followed by its close, and timed rotations. The stream handed on must be every update once."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import serve

from connectors.binance.client import DuplicateFilter, _LaneHandover
from connectors.binance.parsing import Instrument, parse_ws_frame
from connectors.ws_client import ConnectionEnded, RotatingConnection

pytestmark = pytest.mark.integration
INSTRUMENTS = {"BTCUSDT": Instrument("BTCUSDT", "BTC-USDT", "BTC", "USDT", "perp")}


def frame(u: int) -> str:
    data = {"e": "depthUpdate", "E": u, "T": u, "s": "BTCUSDT", "U": u, "u": u, "pu": u - 1, "b": [], "a": []}
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data})


class LiveServer:
    """Pushes update u = 1..last every `interval` s to every subscribed connection; the first connection
    gets `serverShutdown` after `shutdown_at` and is closed `grace` s later; after `last`, all close."""

    def __init__(self, last: int, interval: float, shutdown_at: int | None) -> None:
        self.last, self.interval, self.shutdown_at = last, interval, shutdown_at
        self.subscribers: list = []
        self.connections = 0
        self.done = asyncio.Event()

    async def handler(self, ws) -> None:
        self.connections += 1
        number = self.connections
        msg = json.loads(await ws.recv())
        assert msg["method"] == "SUBSCRIBE" and msg["params"] == ["btcusdt@depth@100ms"]
        await ws.send(json.dumps({"result": None, "id": msg["id"]}))
        self.subscribers.append((number, ws))
        await self.done.wait()
        await ws.close(4100, "end of replay")

    async def pump(self) -> None:
        while not self.subscribers:
            await asyncio.sleep(0.001)
        for u in range(1, self.last + 1):
            for number, ws in list(self.subscribers):
                try:
                    await ws.send(frame(u))
                    if number == 1 and u == self.shutdown_at:
                        await ws.send('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}')
                    if number == 1 and self.shutdown_at and u == self.shutdown_at + 20:
                        self.subscribers.remove((number, ws))
                        await ws.close(1001, "server shutdown")
                except Exception:
                    self.subscribers.remove((number, ws))
            await asyncio.sleep(self.interval)
        self.done.set()


class Collector:
    def __init__(self) -> None:
        self.filter, self.emitted = DuplicateFilter(), []

    def parse(self, raw):
        return parse_ws_frame(raw, INSTRUMENTS, 0, 0)

    def emit(self, ev, raw=None) -> None:
        if self.filter.fresh(ev):
            self.emitted.append(ev.seq)


async def run_client(last: int, shutdown_at: int | None, rotate_after_s: float) -> tuple[list[int], int, int]:
    server = LiveServer(last, 0.002, shutdown_at)
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        collector = Collector()
        conn = RotatingConnection(
            "test", "binance", f"ws://127.0.0.1:{port}/public/stream",
            ['{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":1}'],
            _LaneHandover(collector, "test"),  # type: ignore[arg-type]
            messages_per_s=10, rotate_after_s=rotate_after_s, overlap_max_s=1.0, stop=asyncio.Event(),
        )  # fmt: skip
        pump = asyncio.get_running_loop().create_task(server.pump())
        with pytest.raises(ConnectionEnded) as ended:
            await asyncio.wait_for(conn.run(), 30)
        await pump
    assert ended.value.code == 4100
    return collector.emitted, conn.rotations, server.connections


def test_server_shutdown_hands_over_without_losing_or_repeating_an_update():
    emitted, rotations, connections = asyncio.run(run_client(400, shutdown_at=100, rotate_after_s=3600))
    assert rotations == 1 and connections == 2
    assert emitted == list(range(1, 401))


def test_timed_rotations_hand_over_without_losing_or_repeating_an_update():
    emitted, rotations, connections = asyncio.run(run_client(600, shutdown_at=None, rotate_after_s=0.3))
    assert rotations >= 2 and connections == rotations + 1
    assert emitted == list(range(1, 601))
