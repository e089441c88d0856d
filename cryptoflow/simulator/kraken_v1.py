"""Kraken WebSocket v1 (`wss://ws.kraken.com`, the 2021 recordings), replayed per subscription:

  WS   /   `systemStatus` on connect; `{"event":"subscribe","pair":[...],"subscription":{"name","depth"}}`
           replays the recording of that subscription (book-1000, trade, ticker) for the pairs asked for:
           their `subscriptionStatus` acks and data frames byte for byte, plus the recorded heartbeats

Each subscription replays in its own task, at recorded speed (`speed=1`) or as fast as possible (0);
the connection is closed with 4100 when every subscription's replay is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from connectors.recordings.cryptofeed_v1 import read_cryptofeed_v1
from cryptoflow import paths

if TYPE_CHECKING:
    from cryptoflow.simulator.server import SimulatorStats

V1_RECORDINGS = [paths.EXTERNAL_RECORDINGS / "kraken" / f"cryptofeed_KRAKEN.ws.{n}.0" for n in (48, 49, 50)]


@dataclass(slots=True)
class V1Frame:
    ts: float
    pair: str | None  # None: heartbeat (sent to every subscriber)
    text: str


@dataclass
class V1Recording:
    status: str  # the recorded systemStatus frame
    frames: list[V1Frame] = field(default_factory=list)


def _key(subscription: dict) -> tuple[str, int | None]:
    name = subscription.get("name")
    return name, int(subscription["depth"]) if name == "book" and "depth" in subscription else None


class KrakenV1ReplayVenue:
    name = "kraken-v1"

    def __init__(self, recordings: dict[tuple[str, int | None], V1Recording], speed: float = 0.0) -> None:
        self.recordings, self.speed = recordings, speed
        self.sessions: list[dict] = []

    @classmethod
    def from_recordings(cls, files: list[Path] = V1_RECORDINGS, speed: float = 0.0) -> KrakenV1ReplayVenue:
        recordings: dict[tuple[str, int | None], V1Recording] = {}
        for path in files:
            current: V1Recording | None = None
            for record in read_cryptofeed_v1(path):
                if record.kind == "send":
                    msg = orjson.loads(record.data)
                    current = recordings.setdefault(_key(msg["subscription"]), V1Recording(""))
                elif record.kind == "recv" and current is not None:
                    msg = orjson.loads(record.data)
                    if isinstance(msg, list):
                        current.frames.append(V1Frame(record.ts, msg[-1], record.data))
                    elif msg.get("event") == "systemStatus":
                        current.status = record.data
                    elif msg.get("event") == "heartbeat":
                        current.frames.append(V1Frame(record.ts, None, record.data))
                    elif "pair" in msg:
                        current.frames.append(V1Frame(record.ts, msg["pair"], record.data))
        return cls(recordings, speed)

    def frames_for(self, path: str) -> list | None:
        return [] if path.split("?", 1)[0] in ("/", "") else None

    def rest(self, path: str) -> None:
        return None

    async def serve(self, ws: ServerConnection, stats: SimulatorStats) -> None:
        session: dict = {"subscriptions": [], "sent": 0}
        self.sessions.append(session)
        status = next(iter(self.recordings.values())).status if self.recordings else "{}"
        await ws.send(status)
        tasks: list[asyncio.Task] = []

        async def replay(rec: V1Recording, pairs: set[str]) -> None:
            loop = asyncio.get_running_loop()
            start_wall = loop.time()
            start_rec = rec.frames[0].ts if rec.frames else 0.0
            for i, frame in enumerate(rec.frames):
                if frame.pair is not None and frame.pair not in pairs:
                    continue
                if self.speed > 0:
                    delay = start_wall + (frame.ts - start_rec) / self.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif i % 64 == 0:
                    await asyncio.sleep(0)
                await ws.send(frame.text)
                session["sent"] += 1
                stats.frames_sent += 1

        async def read() -> None:
            async for raw in ws:
                try:
                    msg = orjson.loads(raw)
                    key, pairs = _key(msg["subscription"]), set(msg["pair"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    await ws.send(
                        '{"errorMessage":"Malformed request","event":"subscriptionStatus","status":"error"}'
                    )
                    continue
                rec = self.recordings.get(key)
                if msg.get("event") != "subscribe" or rec is None:
                    await ws.send('{"errorMessage":"Subscription not available in the recordings",'
                                  '"event":"subscriptionStatus","status":"error"}')  # fmt: skip
                    continue
                session["subscriptions"].append((key, sorted(pairs)))
                tasks.append(asyncio.get_running_loop().create_task(replay(rec, pairs)))

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while not tasks:  # wait for the first subscription (or the client leaving)
                if reader.done():
                    return
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the client may subscribe several channels back to back
            while not all(t.done() for t in tasks):
                await asyncio.gather(*tasks)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader
        await ws.close(4100, "end of replay")
