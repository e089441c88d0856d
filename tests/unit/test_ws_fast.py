"""The lean WebSocket read path (`connectors.ws_fast`): frames built here byte by byte from RFC 6455
(not by websockets or the splitter), the stream cut at every chunk boundary, and what a consumer sees
(fast batches plus the messages websockets' own protocol assembles from what the splitter hands it)
compared with the messages as built, in order. The control frames must reach websockets (pong replies,
close handshake) and its verdicts (close codes) must stay its own."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import struct
import zlib
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from connectors.ws_fast import FastReadConnection, FrameSplitter

MAX_SIZE = 1 << 20
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA  # RFC 6455 5.2


def build(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False, mask: bytes = b""
) -> bytes:
    """One frame as RFC 6455 section 5.2 lays it out."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, mask_bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mask_bit | 127, n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


def text(s: str, **kw: Any) -> bytes:
    return build(OP_TEXT, s.encode(), **kw)


def deflate(data: bytes) -> bytes:
    """permessage-deflate (RFC 7692): raw deflate, sync flush, the trailing 00 00 ff ff removed."""
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


class Consumer:
    """The connection's two readers in one: fast batches, and websockets' protocol (sans I/O, OPEN) fed
    the slow bytes, its data frames assembled into messages as `recv()` would (drained at once)."""

    def __init__(self, deflate_negotiated: bool = False, max_size: int | None = MAX_SIZE) -> None:
        self.protocol = ClientProtocol(parse_uri("ws://test/"), state=OPEN, max_size=max_size)
        if deflate_negotiated:
            self.protocol.extensions = [PerMessageDeflate(False, False, 15, 15)]
        self.messages: list[str | bytes] = []
        self.fast: list[str | bytes] = []
        self.batches: list[int] = []
        self.controls: list[tuple[int, bytes]] = []
        self._parts: list[Any] = []

    def on_fast(self, batch: list[Any]) -> None:
        self.batches.append(len(batch))
        self.messages.extend(batch)
        self.fast.extend(batch)

    def on_slow(self, data: bytes) -> bool:
        self.protocol.receive_data(data)
        for frame in self.protocol.events_received():
            if frame.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                self._parts.append(frame)
                if frame.fin:
                    raw = b"".join(bytes(f.data) for f in self._parts)
                    is_text = self._parts[0].opcode == OP_TEXT
                    self._parts = []
                    try:
                        self.messages.append(raw.decode() if is_text else raw)
                    except UnicodeDecodeError:  # websockets' recv() fails the connection so
                        self.protocol.fail(1007, "invalid UTF-8")
                        break
            else:
                self.controls.append((frame.opcode, bytes(frame.data)))
        return self.protocol.state is OPEN


def run_chunks(
    chunks: list[bytes], consumer: Consumer, fast: Any = True, batch_max: int = 256
) -> FrameSplitter:
    splitter = FrameSplitter(MAX_SIZE, batch_max)
    for i, chunk in enumerate(chunks):
        splitter.feed(chunk, fast(i) if callable(fast) else fast, consumer.on_fast, consumer.on_slow)
    return splitter


def cuts(stream: bytes) -> list[list[bytes]]:
    """The stream whole, cut in two at every byte boundary, and in 1-byte chunks."""
    out = [[stream]]
    out += [[stream[:i], stream[i:]] for i in range(1, len(stream))]
    out.append([stream[i : i + 1] for i in range(len(stream))])
    return out


# ------------------------------------------------------------------------------------------ streams
SIZES = [0, 1, 5, 125, 126, 127, 300, 65535, 65536, 70000]  # 7-bit, 16-bit and 64-bit length encodings


def sized_stream() -> tuple[bytes, list[str | bytes]]:
    frames, expected = [], []
    for i, n in enumerate(SIZES):
        payload = bytes((i * 7 + j) % 251 for j in range(n))
        if i % 2:
            s = ("é" * n)[: n // 2] + "x" * (n - 2 * (n // 2))  # multi-byte UTF-8 across the payload
            frames.append(text(s))
            expected.append(s)
        else:
            frames.append(build(OP_BINARY, payload))
            expected.append(payload)
    return b"".join(frames), expected


def test_every_length_encoding_at_every_chunk_boundary_gives_the_built_messages_fast():
    stream, expected = sized_stream()
    # Every 2-way cut of a 200 KB stream is a lot of work; the big frames' boundaries are what matter:
    # all cuts in the headers and the first/last bytes of each frame, and a stride through payloads.
    positions, offset = set(), 0
    for n in SIZES:
        head = 2 if n < 126 else 4 if n < 65536 else 10
        positions.update(range(offset, offset + head + min(n, 3) + 1))
        positions.update(range(offset + head + max(0, n - 3), offset + head + n + 1))
        positions.update(range(offset, offset + head + n, 997))
        offset += head + n
    assert offset == len(stream)
    for cut in sorted(positions):
        for chunks in ([stream[:cut], stream[cut:]], [stream]):
            consumer = Consumer()
            splitter = run_chunks([c for c in chunks if c], consumer)
            assert consumer.messages == expected
            assert consumer.fast == expected  # nothing needed websockets
            assert splitter.tail == b"" and not splitter.passthrough
            assert [type(m) for m in consumer.fast] == [type(m) for m in expected]  # str text, bytes binary


def mixed_stream() -> tuple[bytes, list[str | bytes], list[tuple[int, bytes]]]:
    """Data frames with pings/pongs between them, a fragmented message with a ping inside, empty
    payloads, a 16-bit frame, then a close, then frames the server must not have sent after it."""
    parts = [
        (text("a"), "a"),
        (build(OP_PING, b"p1"), None),
        (text(""), ""),
        (build(OP_BINARY, b""), b""),
        (text("x" * 200), "x" * 200),
        (build(OP_PONG, b""), None),
        (text("frag-", fin=False), None),
        (build(OP_PING, b"p2"), None),
        (build(OP_CONT, b"ment", fin=False), None),
        (build(OP_CONT, b"ed", fin=True), "frag-mented"),
        (text("after"), "after"),
        (build(OP_BINARY, b"\x00\xff"), b"\x00\xff"),
        (build(OP_CLOSE, struct.pack("!H", 1000) + b"bye"), None),
        (text("late"), None),  # after the close: websockets discards it
    ]
    controls = [
        (OP_PING, b"p1"),
        (OP_PONG, b""),
        (OP_PING, b"p2"),
        (OP_CLOSE, struct.pack("!H", 1000) + b"bye"),
    ]
    return b"".join(f for f, _ in parts), [m for _, m in parts if m is not None], controls


def test_control_frames_fragmented_message_and_close_at_every_chunk_boundary():
    stream, expected, controls = mixed_stream()
    for chunks in cuts(stream):
        consumer = Consumer()
        splitter = run_chunks(chunks, consumer)
        assert consumer.messages == expected, chunks
        assert consumer.controls == controls
        assert consumer.protocol.state is not OPEN and consumer.protocol.close_rcvd.code == 1000
        assert splitter.passthrough  # after the close websockets owns the stream
        # the pings were answered, and the close echoed (by websockets, as the client: masked frames)
        sent = consumer.protocol.data_to_send()
        assert len(sent) == 3 and all(data[0] in (0x8A, 0x88) for data in sent)
        assert "frag-mented" not in consumer.fast
        if len(chunks) > 2:  # byte by byte: "after" comes in a later chunk than the fragments, so fast
            assert "after" in consumer.fast


def test_fast_delivery_paused_by_the_caller_sends_every_frame_through_websockets_in_order():
    stream, expected, _ = mixed_stream()
    rng = random.Random(7)
    for chunks in cuts(stream)[:: max(1, len(stream) // 60)]:
        consumer = Consumer()
        run_chunks(chunks, consumer, fast=lambda i: rng.random() < 0.5)
        assert consumer.messages == expected


def test_data_after_a_slow_data_message_in_the_same_chunk_does_not_overtake_it():
    stream = text("one") + text("two", fin=False) + build(OP_CONT, b"!") + text("three") + text("four")
    consumer = Consumer()
    run_chunks([stream], consumer)
    assert consumer.messages == ["one", "two!", "three", "four"]
    assert consumer.fast == ["one"]  # after the fragmented message, the rest of the chunk queued behind it


def test_compressed_frames_rsv1_go_to_websockets_and_decompress_in_order():
    messages = ["plain-" + "z" * 50, "second", "x" * 3000]
    stream = b"".join(build(OP_TEXT, deflate(m.encode()), rsv1=True) for m in messages)
    stream += text("uncompressed")  # permessage-deflate allows uncompressed messages too
    for chunks in cuts(stream)[:: max(1, len(stream) // 150)]:
        consumer = Consumer(deflate_negotiated=True)
        run_chunks(chunks, consumer)
        assert consumer.messages == [*messages, "uncompressed"]
        assert consumer.fast in ([], ["uncompressed"])


def test_batches_are_capped():
    frames = [f"m{i}" for i in range(1000)]
    consumer = Consumer()
    run_chunks([b"".join(text(f) for f in frames)], consumer, batch_max=64)
    assert consumer.messages == frames and max(consumer.batches) == 64 and len(consumer.batches) == 16


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (build(OP_TEXT, b"masked", mask=b"\x01\x02\x03\x04"), 1002),  # servers must not mask
        (build(OP_BINARY, b"x" * 70000), 1009),  # over max_size (64 KiB below)
        (build(OP_TEXT, b"\xff\xfe bad utf-8"), 1007),
        (build(0x3, b"reserved opcode"), 1002),
        (build(OP_TEXT, b"rsv1 without deflate", rsv1=True), 1002),
    ],
)
def test_what_websockets_rejects_is_rejected_by_websockets_with_its_close_code(bad, code):
    stream = text("before") + bad + text("after")
    splitter = FrameSplitter(65536, 256)
    for cut in (0, 1, 2, len(text("before")) + 1, len(stream) - 1):
        consumer = Consumer(max_size=65536)
        splitter = FrameSplitter(65536, 256)
        for chunk in (stream[:cut], stream[cut:]):
            if chunk:
                splitter.feed(chunk, True, consumer.on_fast, consumer.on_slow)
        assert consumer.messages == ["before"]
        assert consumer.protocol.state is not OPEN
        assert consumer.protocol.close_sent is not None and consumer.protocol.close_sent.code == code
        assert splitter.passthrough


def test_incomplete_tail_waits_for_the_next_chunk():
    frame = build(OP_BINARY, b"y" * 300)
    splitter = FrameSplitter(MAX_SIZE, 256)
    consumer = Consumer()
    splitter.feed(frame[:100], True, consumer.on_fast, consumer.on_slow)
    assert consumer.messages == [] and splitter.tail == frame[:100]
    splitter.feed(frame[100:], True, consumer.on_fast, consumer.on_slow)
    assert consumer.messages == [b"y" * 300] and splitter.tail == b""


# ------------------------------------------------------------------------- the connection itself
class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for c in chunks:
            self.write(c)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def handshake_response(request_key: str) -> bytes:
    accept = base64.b64encode(
        hashlib.sha1((request_key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    )
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept.decode()}\r\n\r\n"
    ).encode()


def test_connection_hands_websockets_the_exact_handshake_and_splits_frames_after_it_in_the_same_chunk():
    _, expected, controls = mixed_stream()
    frames_stream = mixed_stream()[0]

    async def one(
        cut: int, frames_from_start: bool
    ) -> tuple[list[Any], list[Any], FastReadConnection, FakeTransport]:
        protocol = ClientProtocol(parse_uri("ws://test/"), max_size=MAX_SIZE)
        conn = FastReadConnection(protocol, ping_interval=None, max_queue=16)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        request = protocol.connect()
        protocol.send_request(request)
        protocol.data_to_send()
        got: list[Any] = []
        fast: list[Any] = []

        def on_frames(batch: list[Any]) -> None:
            got.extend(batch)
            fast.extend(batch)

        if frames_from_start:
            conn.on_frames = on_frames

        async def reader() -> None:  # RotatingConnection's reader: what took websockets' path
            while True:
                got.append(await conn.recv())

        task = asyncio.get_running_loop().create_task(reader())
        stream = handshake_response(request.headers["Sec-WebSocket-Key"]) + frames_stream
        for chunk in (stream[:cut], stream[cut:]):
            if chunk:
                conn.data_received(chunk)
                for _ in range(5):  # let the reader run, as the event loop would between reads
                    await asyncio.sleep(0)
                conn.on_frames = on_frames
        task.cancel()
        return got, fast, conn, transport

    response_len = len(handshake_response("x" * 24))
    for cut in [
        *range(0, response_len + 12),
        *range(response_len + 12, response_len + len(frames_stream), 7),
    ]:
        for from_start in (True, False):
            got, fast, conn, transport = asyncio.run(asyncio.wait_for(one(cut, from_start), 10))
            assert got == expected, (cut, from_start)
            if from_start:  # the frame right after the handshake (same chunk or not) took the fast path
                assert fast[:1] == ["a"]
            assert conn.protocol.close_rcvd is not None and conn.protocol.close_rcvd.code == 1000
            # two pongs and the close reply went out, masked (client frames), in order
            assert [data[0] for data in transport.written] == [0x8A, 0x8A, 0x88]
    assert len(controls) == 4


def test_connection_at_eof_gives_websockets_the_incomplete_frame():
    async def main() -> FastReadConnection:
        protocol = ClientProtocol(parse_uri("ws://test/"), max_size=MAX_SIZE)
        conn = FastReadConnection(protocol, ping_interval=None)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        request = protocol.connect()
        protocol.send_request(request)
        got: list[Any] = []
        conn.on_frames = got.extend
        conn.data_received(
            handshake_response(request.headers["Sec-WebSocket-Key"]) + text("ok") + text("cut")[:3]
        )
        assert got == ["ok"]
        conn.eof_received()
        return conn

    conn = asyncio.run(main())
    assert conn.protocol.state is not OPEN
    assert isinstance(
        conn.protocol.parser_exc, EOFError
    )  # "unexpected end of stream", as without the fast path


@pytest.mark.parametrize("value", ["true", "false", None])
def test_the_config_switch_chooses_the_connection_class(monkeypatch, value):
    from connectors.binance.client import USDM, BinanceClient
    from connectors.ws_client import EgressState
    from cryptoflow.config import load_settings

    if value is not None:
        monkeypatch.setenv("CRYPTOFLOW_CONNECTOR__WS_FAST_READ", value)
    settings = load_settings()
    assert settings.connector.ws_fast_read is (value != "false")
    client = BinanceClient(
        USDM, settings.exchanges.binance.usdm, settings.connector, ["BTCUSDT"], set(), 0, None
    )  # type: ignore[arg-type]
    client._stop_async = asyncio.Event()
    conn = client._connection("c", "ws://127.0.0.1:1/", [], None, EgressState(), messages_per_s=1)  # type: ignore[arg-type]
    factory = conn.connect_kwargs.get("create_connection")
    if value == "false":
        assert not conn.fast_read and factory is None  # websockets' own ClientConnection
    else:
        assert (
            conn.fast_read and factory.func is FastReadConnection and factory.keywords == {"batch_max": 256}
        )
