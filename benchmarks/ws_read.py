"""CPU per frame of reading WebSocket frames: websockets' own path (`recv()`) vs the fast read path
(`connectors.ws_fast`), both through `RotatingConnection` as the venue clients use it.

A server process (loopback, websockets, no compression, like the simulator) sends N Kraken v2 book update
frames as the simulator's synthetic market makes them (`cryptoflow.simulator.synthetic.paced.pregenerate`:
the frames the latency benchmark offers, same sizes), framed up front and written in large writes (or
paced at `--rate` frames/s in 1 ms ticks), then closes with 4100. This process only reads: a handler
that counts frames, so its CPU time per frame (user + system `os.times`, the whole process: event loop,
socket reads, websockets, the split, the hand-over; the kernel's share printed too) is the read path's
cost. Runs alternate between the
two paths (`--runs` each) so background load hits both alike.

    python -m benchmarks.ws_read [--frames 200000] [--runs 3] [--rate 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import struct
import time
from typing import Any

from connectors.ws_client import ConnectionEnded, RotatingConnection

SYMBOLS = 100


def frames_blob(count: int) -> tuple[bytes, int]:
    """`count` Kraken v2 update frames as unmasked server text frames, and their mean payload size."""
    from cryptoflow.simulator.synthetic.market import SyntheticMarket
    from cryptoflow.simulator.synthetic.paced import TAIL, pregenerate

    market = SyntheticMarket([f"S{i:04d}-USD" for i in range(SYMBOLS)], depth=10, seed=1, keep_truth=False)
    book = pregenerate(market, count)
    stamp = b"2026-11-26T21:00:00.000000Z"
    out, total = bytearray(), 0
    for head in book.heads:
        payload = head + stamp + TAIL
        n = len(payload)
        total += n
        if n < 126:
            out += struct.pack("!BB", 0x81, n)
        elif n < 1 << 16:
            out += struct.pack("!BBH", 0x81, 126, n)
        else:
            out += struct.pack("!BBQ", 0x81, 127, n)
        out += payload
    return bytes(out), total // count


def _frame_ends(blob: bytes) -> list[int]:
    ends, pos = [], 0
    while pos < len(blob):
        n = blob[pos + 1] & 0x7F
        head = 2 if n < 126 else 4 if n == 126 else 10
        if n == 126:
            n = int.from_bytes(blob[pos + 2 : pos + 4], "big")
        elif n == 127:
            n = int.from_bytes(blob[pos + 2 : pos + 10], "big")
        pos += head + n
        ends.append(pos)
    return ends


def serve(port_out: Any, count: int, rate: float, runs: int) -> None:
    """The server process: one connection per run; after its first message, every frame, then close."""
    from websockets.asyncio.server import serve as ws_serve

    blob, _ = frames_blob(count)
    ends = _frame_ends(blob)

    async def handler(ws: Any) -> None:
        await ws.recv()  # the subscribe message
        transport = ws.transport
        if rate <= 0:
            for i in range(0, len(blob), 1 << 20):
                transport.write(blob[i : i + (1 << 20)])
                while transport.get_write_buffer_size() > 8 << 20:
                    await asyncio.sleep(0.001)
        else:
            start, sent = time.monotonic(), 0
            while sent < len(ends):
                due = min(len(ends), int((time.monotonic() - start) * rate) + 1)
                if due > sent:
                    transport.write(blob[ends[sent - 1] if sent else 0 : ends[due - 1]])
                    sent = due
                await asyncio.sleep(0.001)
        while transport.get_write_buffer_size():
            await asyncio.sleep(0.001)
        await ws.close(4100, "end of replay")

    async def main() -> None:
        async with ws_serve(handler, "127.0.0.1", 0, compression=None, max_size=1 << 20) as server:
            port_out.put(server.sockets[0].getsockname()[1])
            await asyncio.sleep(3600)

    asyncio.run(main())


class Counter:
    def __init__(self) -> None:
        self.frames = 0
        self.batches = 0

    def on_frames(self, raws: list[Any], primary: bool) -> None:
        self.frames += len(raws)
        self.batches += 1

    def wants_rotation(self, raw: Any) -> bool:
        return False


async def read_once(port: int, fast: bool) -> tuple[int, int, float, float, float]:
    counter = Counter()
    conn = RotatingConnection(
        "bench", "kraken", f"ws://127.0.0.1:{port}/v2", ["sub"], counter,  # type: ignore[arg-type]
        messages_per_s=100, rotate_after_s=3600, overlap_max_s=1.0, stop=asyncio.Event(), fast_read=fast,
    )  # fmt: skip
    t0, wall0 = os.times(), time.perf_counter()
    try:
        await conn.run()
    except ConnectionEnded as exc:
        if exc.code != 4100:
            raise
    t1 = os.times()
    user, system = t1.user - t0.user, t1.system - t0.system
    return counter.frames, counter.batches, user + system, system, time.perf_counter() - wall0


def measure(frames: int, runs: int, rate: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    server = ctx.Process(target=serve, args=(ports, frames, rate, runs), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=120)
        _, mean_size = frames_blob(min(frames, 2000))
        results: dict[str, list[dict[str, float]]] = {"websockets": [], "fast": []}
        for _ in range(runs):
            for name in ("websockets", "fast"):
                got, batches, cpu, system, wall = asyncio.run(read_once(port, name == "fast"))
                if got != frames:
                    raise RuntimeError(f"{name}: read {got} of {frames} frames")
                results[name].append({"cpu_us_per_frame": cpu / got * 1e6, "wall_s": wall,
                                      "system_us_per_frame": system / got * 1e6,
                                      "frames_per_batch": got / batches})  # fmt: skip
    finally:
        server.terminate()
        server.join(5)
    summary: dict[str, Any] = {"frames": frames, "runs": runs, "rate": rate, "mean_payload_bytes": mean_size}
    for name, rows in results.items():
        summary[name] = {
            "cpu_us_per_frame": [round(r["cpu_us_per_frame"], 2) for r in rows],
            "median_cpu_us_per_frame": round(statistics.median(r["cpu_us_per_frame"] for r in rows), 2),
            "median_system_us_per_frame": round(statistics.median(r["system_us_per_frame"] for r in rows), 2),
            "median_frames_per_batch": round(statistics.median(r["frames_per_batch"] for r in rows), 1),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.0, help="frames/s from the server (0: all at once)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = measure(args.frames, args.runs, args.rate)
    if args.json:
        print(json.dumps(summary))
        return
    offered = f"{args.rate:.0f} frames/s" if args.rate > 0 else "as fast as the server writes"
    print(f"{args.frames} Kraken v2 book frames ({summary['mean_payload_bytes']} B mean), {offered}:")
    for name in ("websockets", "fast"):
        row = summary[name]
        print(f"  {name:>10}: {row['median_cpu_us_per_frame']:6.2f} us CPU/frame (runs {row['cpu_us_per_frame']};"
              f" kernel {row['median_system_us_per_frame']}), {row['median_frames_per_batch']} frames per batch")  # fmt: skip


if __name__ == "__main__":
    main()
