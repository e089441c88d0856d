"""`RotatingConnection` over real sockets against a small live-like server: one update counter for every
connection (a connection sees updates from the moment it subscribes), a `serverShutdown` on the first
connection followed by its close, and timed rotations. The stream handed on must be every update once."""

from __future__ import annotations

import asyncio
import json
import time

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
        self.peers: list[str] = []  # the local address each connection came from
        self.done = asyncio.Event()

    async def handler(self, ws) -> None:
        self.connections += 1
        self.peers.append(ws.remote_address[0])
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

    def parse_many(self, raws):
        events = [parse_ws_frame(raw, INSTRUMENTS, 0, 0) for raw in raws]
        kept = [(ev, raw) for ev, raw in zip(events, raws, strict=True) if ev is not None]
        return [ev for ev, _ in kept], [raw for _, raw in kept]

    def _on_frames(self, raws) -> None:  # the primary's reads (the real client may take them as columns)
        self.emit_many(*self.parse_many(raws))

    def emit_many(self, events, raws) -> None:
        self.emitted.extend(
            ev.seq for ev, fresh in zip(events, self.filter.fresh_many(events), strict=True) if fresh
        )


async def run_client(
    last: int, shutdown_at: int | None, rotate_after_s: float, opener=None, server: LiveServer | None = None
) -> tuple[list[int], int, int]:
    server = server or LiveServer(last, 0.002, shutdown_at)
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        collector = Collector()
        conn = RotatingConnection(
            "test", "binance", f"ws://127.0.0.1:{port}/public/stream",
            ['{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":1}'],
            _LaneHandover(collector, "test"),  # type: ignore[arg-type]
            messages_per_s=10, rotate_after_s=rotate_after_s, overlap_max_s=1.0, stop=asyncio.Event(),
            opener=opener,
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


def test_every_connection_including_replacements_goes_through_the_opener_lease():
    """The egress hook: each connect (first one and every rotation's replacement) binds to the address the
    opener chose, and each lease is released once when that connection ends."""
    from connectors.egress import EgressManager

    egress = EgressManager(["127.0.0.2", "127.0.0.3"])
    egress.assign([0])
    leases, released = [], []

    async def opener():
        ip = egress.open(0)
        leases.append(ip)
        if len(leases) == 2:  # the next connection of shard 0 moves to the other address
            egress.report_throttle(ip, 418, 60)

        def release(error):
            released.append((ip, error))
            egress.close(ip)

        return {"local_addr": (ip, 0)}, release

    server = LiveServer(600, 0.002, None)
    emitted, rotations, connections = asyncio.run(run_client(600, None, 0.3, opener, server))
    assert rotations >= 2 and connections == rotations + 1 == len(leases)
    assert emitted == list(range(1, 601))
    assert server.peers == leases  # every socket came from the leased address
    assert leases[:2] == ["127.0.0.2", "127.0.0.2"] and set(leases[2:]) == {"127.0.0.3"}
    assert sorted(ip for ip, _ in released) == sorted(leases) and all(e is None for _, e in released)
    assert egress.connections("127.0.0.2") == egress.connections("127.0.0.3") == 0


class BatchRecorder:
    """Records each batch the connection hands over; the first one blocks the loop for a moment, so the
    frames the server sends meanwhile wait in the socket (as when the client is the bottleneck)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def on_frames(self, raws, primary):
        assert primary
        self.batches.append(list(raws))
        if len(self.batches) == 1:
            time.sleep(0.3)

    def wants_rotation(self, raw):
        return False


def test_frames_already_buffered_are_handed_over_as_one_batch_in_order():
    from connectors.ws_client import MAX_BATCH_FRAMES

    total = 1000

    async def handler(ws):
        await ws.recv()  # the subscribe message
        for u in range(1, total + 1):
            await ws.send(frame(u))
        await ws.close(4100, "end of replay")

    async def main() -> BatchRecorder:
        recorder = BatchRecorder()
        async with serve(handler, "127.0.0.1", 0) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            conn = RotatingConnection(
                "test", "binance", f"ws://127.0.0.1:{port}/public/stream", ["sub"], recorder,  # type: ignore[arg-type]
                messages_per_s=10, rotate_after_s=3600, overlap_max_s=1.0, stop=asyncio.Event(),
            )  # fmt: skip
            with pytest.raises(ConnectionEnded):
                await asyncio.wait_for(conn.run(), 30)
        return recorder

    recorder = asyncio.run(main())
    frames = [raw for batch in recorder.batches for raw in batch]
    assert frames == [frame(u) for u in range(1, total + 1)]  # every frame once, in order, close included
    sizes = [len(batch) for batch in recorder.batches]
    assert max(sizes) > 1 and max(sizes) <= MAX_BATCH_FRAMES and len(sizes) < total
