"""Frame faults for venues that drive their own connections (`serve`: Kraken v2, the synthetic feeds).

Such a venue writes its frames itself, so the simulator hands it a `FaultySocket` instead of the real
connection: every frame the venue sends draws a `FrameFault` from the simulator's `FaultInjector`, as
the replay path does per frame:

* disconnect: the socket is closed (1011) and this frame and every later one meant for the connection
  are lost to the client (logged in `stats.skipped`, as replay frames skipped while a client is away);
* stall: this frame and the ones after it are held for `stall_s`, then go out at once (the venue's
  feed is not blocked: other connections keep receiving);
* burst: the venue's feeds run `burst_factor` faster for `burst_frames` changes (`BurstTempo`).

A banned address's sockets (`drop_connections`) lose their frames the same way. Each connection's
`SessionLog` says how it ended and, per frame key (`venue.frame_key`, e.g. a book's symbol), the last
frame the client really received: what a test compares the collector's gaps with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from cryptoflow.simulator.faults import FaultInjector, FrameFault

if TYPE_CHECKING:
    from cryptoflow.simulator.server import SimulatorStats

# websockets internals `batching.send_many` writes through; hidden so it falls back to `send` per frame
_HIDDEN = frozenset({"protocol", "transport", "send_context"})


@dataclass
class SessionLog:
    """One `serve` connection as the simulator saw it (ground truth for chaos tests)."""

    ip: str
    path: str
    delivered: int = 0
    lost: int = 0
    ended_by: str | None = None  # disconnect | ban_drop | closed (by the venue or the client)
    close_code: int | None = None
    last: dict[str, str] = field(default_factory=dict)  # frame key -> last frame delivered


class BurstTempo:
    """A feed's speed factor: `burst_factor` for the next `burst_frames` changes after a burst fault."""

    def __init__(self) -> None:
        self.left, self.factor = 0, 1.0

    def start(self, changes: int, factor: float) -> None:
        self.left, self.factor = changes, factor

    def __call__(self) -> float:
        if self.left <= 0:
            return 1.0
        self.left -= 1
        return self.factor


class FaultySocket:
    """Wraps a `ServerConnection` for a `serve` venue; anything but sending is passed through."""

    def __init__(
        self,
        ws: ServerConnection,
        faults: FaultInjector,
        stats: SimulatorStats,
        log: SessionLog,
        dropped: Callable[[], bool],
        tempo: BurstTempo,
        frame_key: Callable[[str], str | None] | None,
    ) -> None:
        self._ws, self._faults, self._stats, self._log = ws, faults, stats, log
        self._dropped, self._tempo, self._frame_key = dropped, tempo, frame_key
        self._held: list[str] | None = None  # frames waiting out a stall
        self._release: asyncio.Task | None = None

    def __getattr__(self, name: str) -> Any:
        if name in _HIDDEN:
            raise AttributeError(name)
        return getattr(self._ws, name)

    def __aiter__(self):
        return self._ws.__aiter__()

    @property
    def lost(self) -> bool:
        return self._log.ended_by == "disconnect" or self._dropped()

    async def send(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        if self.lost:
            self._skip(text)
            return
        fault = self._faults.frame_fault()
        if fault is FrameFault.DISCONNECT:
            self._stats.faults["disconnect"] += 1
            self._log.ended_by = "disconnect"
            self._skip(text)
            asyncio.get_running_loop().create_task(self._ws.close(1011, "injected disconnect"))
            return
        if fault is FrameFault.BURST:
            self._stats.faults["burst"] += 1
            plan = self._faults.plan
            self._tempo.start(plan.burst_frames, plan.burst_factor)
        if fault is FrameFault.STALL and self._held is None:
            self._stats.faults["stall"] += 1
            self._held = []
            self._release = asyncio.get_running_loop().create_task(
                self._release_after(self._faults.plan.stall_s)
            )
        if self._held is not None:
            self._held.append(text)
            return
        await self._deliver(text)

    async def _deliver(self, text: str) -> None:
        await self._ws.send(text)
        self._log.delivered += 1
        key = self._frame_key(text) if self._frame_key is not None else None
        if key is not None:
            self._log.last[key] = text

    async def _release_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        held = self._held or []
        while held:
            text = held.pop(0)
            if self.lost:
                self._skip(text)
                continue
            try:
                await self._deliver(text)
            except ConnectionClosed:
                self._skip(text)
        self._held = None

    def _skip(self, text: str) -> None:
        self._log.lost += 1
        self._stats.frames_skipped += 1
        self._stats.skipped.append((self._log.path, text))
