"""A lean read path for WebSocket data frames: a websockets `ClientConnection` whose `data_received`
splits complete, unfragmented, unmasked, RSV-free text/binary frames itself and hands each received
chunk's frames as one batch straight to a callback (no per-message parser generator, `Frame` object,
assembler queue, future or `recv()`).

Why: at 10k frames/s the flow process runs near a full core, and websockets' per-frame work
(`Protocol.parse` -> `Frame.parse` -> `Assembler` -> `recv()`, 14-27 µs CPU) was as large as all of our
own frame handling. The splitter here costs ~1-2 µs per frame (`benchmarks/ws_read.py`).

Everything else stays websockets': the handshake (the HTTP response is fed to it byte-exact, so its
frame parser starts at a frame boundary), TLS, ping/pong replies, the close handshake, protocol errors
and their close codes, `ConnectionClosed`. Frames that need it (control frames, fragmented messages,
any RSV bit, i.e. negotiated compression; masked or oversized frames, invalid UTF-8, unknown opcodes)
are fed to websockets' protocol as whole frames, in stream order: a data message that took websockets'
path reaches the reader through `recv()`, and fast delivery pauses until that reader has drained it,
so no frame overtakes another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.protocol import OPEN

FastSink = Callable[[list[Any]], None]  # a batch of payloads: str (text frames) or bytes (binary)
SlowSink = Callable[[bytes], bool]  # whole frames for websockets; False: the connection left OPEN

_TEXT_FIN = 0x81  # FIN, no RSV bits, opcode 1
_BINARY_FIN = 0x82  # FIN, no RSV bits, opcode 2
_HEADERS_END = b"\r\n\r\n"
READ_SIZE = 256 * 1024  # bytes per socket read, as asyncio's own transport reads


class FrameSplitter:
    """Splits a server's byte stream into frames (pure: no I/O, no websockets state).

    `feed(data, fast, on_fast, on_slow)`: complete FIN text/binary frames without RSV bits go to
    `on_fast` as payload batches (text decoded and UTF-8 checked, at most `batch_max` per call) while
    `fast` holds; every other frame goes to `on_slow` as its exact bytes (consecutive ones joined), in
    stream order. A data frame that goes slow ends fast delivery for the rest of the call (its message
    waits in websockets' queue; later frames must not overtake it), and so does a fragmented message
    until its last frame. When `on_slow` returns False (websockets closed or failed the connection), or
    a header websockets rejects outright (masked, over `max_size`) arrives, everything from there on
    passes through to `on_slow` unsplit (`passthrough`). An incomplete frame waits for the next call.
    """

    __slots__ = ("batch_max", "fragmented", "max_size", "passthrough", "tail")

    def __init__(self, max_size: int | None, batch_max: int) -> None:
        self.tail = b""
        self.fragmented = False  # a fragmented message is in progress (its frames go to websockets)
        self.passthrough = False
        self.max_size = max_size
        self.batch_max = batch_max

    def take_tail(self) -> bytes:
        """The bytes of an incomplete frame (at EOF websockets must see them to report it)."""
        tail, self.tail = self.tail, b""
        return tail

    def feed(self, data: bytes, fast: bool, on_fast: FastSink, on_slow: SlowSink) -> None:
        if self.passthrough:
            on_slow(data)
            return
        buf = self.tail + data if self.tail else data
        n = len(buf)
        pos = 0
        slow_from = -1  # start of the current run of slow frames
        batch: list[Any] = []
        max_size = self.max_size
        batch_max = self.batch_max
        fast = fast and not self.fragmented
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            if b1 & 0x80 or (max_size is not None and length > max_size):
                # websockets fails the connection on this header alone: it gets everything from here
                if batch:
                    on_fast(batch)
                on_slow(buf[pos if slow_from < 0 else slow_from :])
                self.passthrough, self.tail = True, b""
                return
            end = start + length
            if end > n:
                break
            if fast:
                if b0 == _TEXT_FIN:
                    try:
                        batch.append(buf[start:end].decode())
                    except UnicodeDecodeError:  # websockets closes with 1007
                        pass
                    else:
                        if len(batch) >= batch_max:
                            on_fast(batch)
                            batch = []
                        pos = end
                        continue
                elif b0 == _BINARY_FIN:
                    batch.append(buf[start:end])
                    if len(batch) >= batch_max:
                        on_fast(batch)
                        batch = []
                    pos = end
                    continue
            # websockets' path: flush the fast batch first, then join this frame to the slow run
            if batch:
                on_fast(batch)
                batch = []
            if slow_from < 0:
                slow_from = pos
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2:  # a data message: queued by websockets, read via recv()
                fast = False
                self.fragmented = not b0 & 0x80
            elif opcode == 0 and b0 & 0x80:  # last frame of a fragmented message
                self.fragmented = False
            elif opcode == 8 or (3 <= opcode <= 7) or opcode >= 11:  # close / unknown: connection ends
                fast = False
            pos = end
            if fast and not self.fragmented:  # a control frame: hand it over now, fast frames go on
                if not on_slow(buf[slow_from:pos]):
                    return self._pass_rest(buf, pos, on_slow)
                slow_from = -1
        if batch:
            on_fast(batch)
        if slow_from >= 0 and not on_slow(buf[slow_from:pos]):
            self._pass_rest(buf, pos, on_slow)
            return
        self.tail = buf[pos:] if pos < n else b""

    def _pass_rest(self, buf: bytes, pos: int, on_slow: SlowSink) -> None:
        self.passthrough, self.tail = True, b""
        if pos < len(buf):
            on_slow(buf[pos:])


def _discard(batch: list[Any]) -> None:
    pass


class FastReadConnection(ClientConnection, asyncio.BufferedProtocol):
    """websockets' asyncio client connection with the fast read path (pass it to `connect()` as
    `create_connection`). Until `on_frames` is set, every frame takes websockets' path (read with
    `recv()`); once set, fast frames go to it in batches, straight from `data_received`.

    It is also an `asyncio.BufferedProtocol`: the transport reads into one preallocated buffer
    (`recv_into`) instead of `sock.recv(256 KiB)`, whose fresh 256 KiB allocation (above glibc's mmap
    threshold: an mmap and munmap per read) cost ~15 µs per read, more than the frames in a small read."""

    def __init__(self, *args: Any, batch_max: int = 256, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_frames: FastSink | None = None
        self.discarding = False  # the consumer failed: further frames are dropped, the connection closes
        self._closing_task: asyncio.Task[None] | None = None
        sizes = [
            s for s in (self.protocol.max_message_size, self.protocol.max_fragment_size) if s is not None
        ]
        self.splitter = FrameSplitter(min(sizes) if sizes else None, batch_max)
        self._head: bytes | None = b""  # the handshake response so far; None once it is complete
        self._read_view = memoryview(bytearray(READ_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            data = self._handshake_data(data)
            if not data:
                return
        on_frames = self.on_frames
        # Fast only when websockets holds no unread message: one queued there must be read first.
        fast = on_frames is not None and not len(self.recv_messages.frames)
        self.splitter.feed(data, fast, on_frames or _discard, self._to_websockets)

    def _handshake_data(self, data: bytes) -> bytes:
        """Feed websockets the HTTP response exactly; return what follows it (frames) to split."""
        assert self._head is not None
        seen = len(self._head)
        head = self._head + data
        end = head.find(_HEADERS_END, max(0, seen - 3))
        if end < 0:
            self._head = head
            ClientConnection.data_received(self, data)
            return b""
        cut = end + len(_HEADERS_END) - seen
        self._head = None
        ClientConnection.data_received(self, data[:cut])
        if self.protocol.state is not OPEN:  # refused (e.g. 429 with a body): websockets reads the rest
            self.splitter.passthrough = True
        return data[cut:]

    def _to_websockets(self, frames: bytes) -> bool:
        ClientConnection.data_received(self, frames)
        return self.protocol.state is OPEN

    def eof_received(self) -> None:
        tail = self.splitter.take_tail()
        if tail:  # an incomplete frame: websockets reports it as it would have
            ClientConnection.data_received(self, tail)
        return super().eof_received()

    def discard_frames(self) -> None:
        """Stop delivering fast frames (after the consumer failed on one) and close the connection."""
        if self.discarding:
            return
        self.discarding = True
        self.on_frames = _discard
        self._closing_task = self.loop.create_task(self.close())  # held: the loop keeps weak references
