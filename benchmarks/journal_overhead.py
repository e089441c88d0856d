"""Frames/s of the connector -> dataflow hand-off on the real Binance spot recording, with and without
the journal (the journal path parses twice: ids in the client to decide resyncs, everything after the
journal). Single thread, no network: the recorded frames are fed to the client's frame handler.

    .venv/bin/python -m benchmarks.journal_overhead [--repeat 200] [--fsync never|interval|always]
"""

from __future__ import annotations

import argparse
import json
import queue
import tempfile
import time
from pathlib import Path

from connectors.binance.client import DuplicateFilter
from connectors.binance.decode import BinanceDecoder
from connectors.binance.parsing import parse_exchange_info
from connectors.binance.spot_client import CHANNEL_DEPTH, CHANNEL_TRADES, BinanceSpotClient
from connectors.journal import JournalReader, JournalWriter, RecordKind
from connectors.source import JournalShardPartition
from cryptoflow import paths
from cryptoflow.config import BinanceSpotConfig, ConnectorConfig
from cryptoflow.model import Market
from cryptoflow.simulator.binance_spot import BinanceSpotVenue
from operators.sequencing.binance import spot_verdict
from operators.sequencing.sync import DiffSync


def make_client(out) -> tuple[BinanceSpotClient, bytes]:
    symbols = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
    client = BinanceSpotClient(
        BinanceSpotConfig(symbols=symbols),
        ConnectorConfig(),
        symbols,
        {CHANNEL_DEPTH, CHANNEL_TRADES},
        0,
        out,
    )
    info = Path(paths.BINANCE_SPOT_INSTRUMENTS).read_bytes()
    client.instruments = parse_exchange_info(info, Market.SPOT)
    client.syncs = {s: DiffSync(spot_verdict) for s in symbols}
    client._request_snapshot = lambda *a, **k: None  # no network in a benchmark
    return client, info


def bench_queue(frames: list[str], repeat: int) -> tuple[float, int]:
    out: queue.Queue = queue.Queue()
    client, _ = make_client(out)
    events = 0
    started = time.perf_counter()
    for _ in range(repeat):
        client.filter = DuplicateFilter()  # each repeat is a new replay, not a hand-over's repeats
        for frame in frames:
            client._on_frame(frame)
        while not out.empty():  # the source partition's drain
            out.get_nowait()
            events += 1
    return len(frames) * repeat / (time.perf_counter() - started), events


def bench_journal(frames: list[str], repeat: int, fsync: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        writer = JournalWriter(Path(tmp), fsync=fsync)
        client, info = make_client(writer)
        writer.append(RecordKind.INSTRUMENTS, "", info, 0)
        part = JournalShardPartition(
            "shard-00000", JournalReader(Path(tmp), 0), BinanceDecoder(0), [], None, 1000, 5, 0.0
        )
        part.clients = [client]  # live: an empty read means "nothing yet", not the end
        events = 0
        started = time.perf_counter()
        for _ in range(repeat):
            client.filter = DuplicateFilter()
            for frame in frames:
                client._on_frame(frame)
            while batch := part.next_batch():  # the source partition's read + decode
                events += len(batch)
        elapsed = time.perf_counter() - started
        writer.close()
    return len(frames) * repeat / elapsed, events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--fsync", default="interval", choices=["never", "interval", "always"])
    args = parser.parse_args()
    frames = [f.text for f in BinanceSpotVenue.from_cryptofeed_v1().frames]
    size = sum(len(f) for f in frames) / len(frames)
    q, q_events = bench_queue(frames, args.repeat)
    j, j_events = bench_journal(frames, args.repeat, args.fsync)
    assert q_events == j_events, (q_events, j_events)  # both paths deliver the same events
    print(json.dumps({
        "frames": len(frames), "mean_frame_bytes": round(size), "repeat": args.repeat, "fsync": args.fsync,
        "queue_frames_per_s": round(q), "journal_frames_per_s": round(j), "journal_vs_queue": round(j / q, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
