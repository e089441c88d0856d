"""`RotatingConnection` with and without the fast read path (`connectors.ws_fast`) against a real
websockets server that mixes what the fast path handles (text and binary frames of every length
encoding) with what it must leave to websockets (server pings, a fragmented message, negotiated
compression, the close handshake): both paths hand over the same messages, in the order sent."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import serve

from connectors.ws_client import ConnectionEnded, RotatingConnection
from connectors.ws_fast import FastReadConnection

pytestmark = pytest.mark.integration


def messages() -> list[str | bytes]:
    out: list[str | bytes] = []
    for i in range(600):
        n = (0, 7, 125, 126, 300, 65535, 65536, 70000)[i % 8] if i % 50 < 8 else 40 + i % 90
        out.append(f"{i}:" + "k" * n if i % 3 else bytes([i % 256]) * n)
    return out


class Recorder:
    def __init__(self) -> None:
        self.frames: list[str | bytes] = []

    def on_frames(self, raws, primary):
        assert primary
        self.frames.extend(raws)

    def wants_rotation(self, raw):
        return False


async def run(
    fast_read: bool, compression: str | None
) -> tuple[list[str | bytes], list[str | bytes], str, int]:
    sent: list[str | bytes] = []
    kinds: list[str] = []
    fast_frames: list[str | bytes] = []

    async def handler(ws):
        await ws.recv()  # the subscribe message
        for i, m in enumerate(messages()):
            if i % 97 == 5:
                await ws.ping()
            if i % 151 == 10:  # a fragmented message: three frames
                parts = ["frag", f"-{i}", "-end"]
                await ws.send(parts)
                sent.append("".join(parts))
            await ws.send(m)
            sent.append(m)
        await ws.close(4100, "end of replay")

    recorder = Recorder()
    async with serve(handler, "127.0.0.1", 0, compression=compression, max_size=1 << 20) as server:
        port = server.sockets[0].getsockname()[1]
        conn = RotatingConnection(
            "test", "kraken", f"ws://127.0.0.1:{port}/", ["sub"], recorder,  # type: ignore[arg-type]
            messages_per_s=10, rotate_after_s=3600, overlap_max_s=1.0, stop=asyncio.Event(), fast_read=fast_read,
        )  # fmt: skip
        opened: list[object] = []
        original_open = conn._open

        async def spy_open(primary: bool):
            ws = await original_open(primary)
            opened.append(ws)
            kinds.append(type(ws).__name__)
            return ws

        conn._open = spy_open  # type: ignore[method-assign]
        original_deliver = conn._deliver

        def spy_deliver(ws, batch):  # the fast path's hand-over (from data_received)
            fast_frames.extend(batch)
            original_deliver(ws, batch)

        conn._deliver = spy_deliver  # type: ignore[method-assign]
        with pytest.raises(ConnectionEnded) as ended:
            await asyncio.wait_for(conn.run(), 60)
    assert ended.value.code == 4100
    return recorder.frames, sent, kinds[0], len(fast_frames)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_fast_and_websockets_paths_hand_over_the_same_messages_in_order(compression):
    fast, sent_fast, kind_fast, fast_count = asyncio.run(run(True, compression))
    slow, sent_slow, kind_slow, slow_fast_count = asyncio.run(run(False, compression))
    assert sent_fast == sent_slow
    assert fast == sent_fast  # every message once, in order, str/bytes as sent
    assert slow == sent_slow
    assert kind_fast == FastReadConnection.__name__ and kind_slow == "ClientConnection"
    assert slow_fast_count == 0
    if compression is None:  # most frames took the fast path; fragments and what queued behind them did not
        assert len(sent_fast) // 2 < fast_count < len(sent_fast)
    else:  # compressed (RSV1) frames all take websockets' path
        assert fast_count == 0


class FailingRecorder(Recorder):
    """Raises on the frame "boom" (a bug in frame handling)."""

    def on_frames(self, raws, primary):
        if "boom" in raws:
            self.frames.extend(raws[: raws.index("boom")])
            raise RuntimeError("handler bug")
        self.frames.extend(raws)


@pytest.mark.parametrize("fast_read", [True, False])
def test_a_failure_in_frame_handling_drops_the_connection_on_both_paths(fast_read, caplog):
    async def main() -> tuple[FailingRecorder, ConnectionEnded]:
        async def handler(ws):
            await ws.recv()
            for m in ["one", "two", "boom", "three"]:
                await ws.send(m)
            await ws.wait_closed()  # the client closes

        recorder = FailingRecorder()
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            conn = RotatingConnection(
                "test", "kraken", f"ws://127.0.0.1:{port}/", ["sub"], recorder,  # type: ignore[arg-type]
                messages_per_s=10, rotate_after_s=3600, overlap_max_s=1.0, stop=asyncio.Event(),
                fast_read=fast_read,
            )  # fmt: skip
            with pytest.raises(ConnectionEnded) as ended:
                await asyncio.wait_for(conn.run(), 20)
        return recorder, ended.value

    recorder, ended = asyncio.run(main())
    assert recorder.frames == ["one", "two"]  # nothing after the failure is handed over
    assert ended.code == 1000  # the client closed the connection (the caller reconnects)
    assert sum("frame handling failed" in r.getMessage() for r in caplog.records) == 1


def _self_signed(tmp_path) -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1 (cryptography comes with the dev extra, through moto)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


def test_fast_read_over_tls_hands_over_every_message_in_order(tmp_path):
    """Every venue is wss://: the TLS transport reads into the connection's buffer the same way."""
    import ssl

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=cert)
    sent = messages()

    async def main() -> tuple[list[str | bytes], int]:
        async def handler(ws):
            await ws.recv()
            for i, m in enumerate(sent):
                if i == 300:
                    await ws.ping()
                await ws.send(m)
            await ws.close(4100, "end of replay")

        recorder = Recorder()
        async with serve(handler, "127.0.0.1", 0, ssl=server_ctx, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            conn = RotatingConnection(
                "test", "kraken", f"wss://127.0.0.1:{port}/", ["sub"], recorder,  # type: ignore[arg-type]
                messages_per_s=10, rotate_after_s=3600, overlap_max_s=1.0, stop=asyncio.Event(),
                connect_kwargs={"ssl": client_ctx},
            )  # fmt: skip
            delivered: list[int] = []
            original = conn._deliver
            conn._deliver = lambda ws, batch: (delivered.append(len(batch)), original(ws, batch))  # type: ignore[method-assign]
            with pytest.raises(ConnectionEnded) as ended:
                await asyncio.wait_for(conn.run(), 60)
        assert ended.value.code == 4100
        return recorder.frames, sum(delivered)

    frames, fast_count = asyncio.run(main())
    assert frames == sent
    assert fast_count == len(sent)  # no fragments or compression here: every frame took the fast path
