"""Write many WebSocket text frames to one connection with a single socket write.

The synthetic mode can make tens of thousands of frames per second; sent one `ws.send` at a time each
costs a syscall and a drain. Here the frames are framed by websockets' Sans-I/O protocol object inside
the connection's own send context and their bytes are written in one `transport.write`. If a websockets
release moves these internals, it falls back to one `send` per frame (slower, same bytes)."""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection


async def send_many(ws: ServerConnection, frames: list[str]) -> None:
    if not frames:
        return
    try:
        protocol, transport = ws.protocol, ws.transport
        context = ws.send_context
    except AttributeError:  # pragma: no cover - websockets internals changed
        for frame in frames:
            await ws.send(frame)
        return
    async with context():
        for frame in frames:
            protocol.send_text(frame.encode())
        transport.write(b"".join(protocol.data_to_send()))
