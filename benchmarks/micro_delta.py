"""Single-thread CPU time per frame of the Binance delta path without Bytewax or Iceberg, split in two:

* client: every `_on_frames` call of a production `BinanceClient` (decode, duplicate filter, id-only
  sequencer, hand-over into a `HandoffQueue`), the corpus in reads of `--read` frames, REST snapshots
  injected as `_fetch_snapshot` does;
* worker: `ShardPartition.next_batch` -> `group_runs` -> `PositionedLogic(VenueDeltaLogic)` -> the delta
  table's `to_arrow` in 20k-row chunks (as the sink converts), the Arrow part also reported alone.

`--per-frame` turns the client's columnar read path off (the reference path). The committed row count is
checked against the corpus's ground truth on every run. Process CPU time, min of `--runs`, GC off.

    python -m benchmarks.micro_delta --venue binance-spot --reps 200 [--per-frame]
"""

from __future__ import annotations

import argparse
import gc
import time

import orjson

from benchmarks.corpus import binance_instruments_json, load_binance
from connectors.binance.client import SPOT, USDM, BinanceClient
from connectors.binance.parsing import parse_depth_snapshot, parse_exchange_info
from connectors.handoff import HandoffQueue
from connectors.signals import END
from connectors.source import ShardPartition
from cryptoflow.config import Settings
from cryptoflow.model import GapRow, Market
from cryptoflow.schemas import TABLES
from operators.positioned import PositionedLogic
from operators.runs import group_runs
from operators.sequencing.binance import spot_verdict, usdm_verdict
from operators.sequencing.sync import DiffSync
from operators.venue_delta import VenueDeltaLogic

CONVERT_EVERY = 20_000


class _Idle:
    def start(self) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        pass


def run_once(venue: str, reps: int, read: int, columnar: bool) -> tuple[float, float, float, int]:
    """(client CPU s, worker CPU s, of which Arrow CPU s, frames)."""
    corpus = load_binance(venue, reps)
    market = USDM if corpus.market == "perp" else SPOT
    instruments = parse_exchange_info(
        orjson.dumps({"symbols": binance_instruments_json(corpus)}),
        Market.PERP if market == USDM else Market.SPOT,
    )
    settings = Settings()
    cfg = settings.exchanges.binance.spot if market == SPOT else settings.exchanges.binance.usdm
    stream = "spot_delta" if market == SPOT else "futures_delta"
    out = HandoffQueue(10**9)
    client = BinanceClient(
        market, cfg, settings.connector, corpus.symbols, {"depth"}, 0, out, columnar=columnar
    )
    client.instruments = instruments
    client.syncs = {s: DiffSync(spot_verdict if market == SPOT else usdm_verdict) for s in corpus.symbols}
    client._request_snapshot = lambda *args, **kwargs: None
    client_cpu, frames = 0.0, []
    for kind, item in corpus.schedule:
        if kind == "ws":
            frames.append(item)
            if len(frames) < read:
                continue
        if frames:
            started = time.process_time()
            client._on_frames(frames)
            client_cpu += time.process_time() - started
            frames = []
        if kind == "rest":
            event = parse_depth_snapshot(corpus.snapshots[item].body, instruments[item], 0, 1)
            client.syncs[item].on_snapshot(None, event.seq)
            client._put(event)
    if frames:
        started = time.process_time()
        client._on_frames(frames)
        client_cpu += time.process_time() - started
    out.put(END)

    started = time.process_time()
    part = ShardPartition("shard-00000", [_Idle()], out, 0, settings.connector.batch_size, 1)
    book, table, logics = settings.book, TABLES[stream], {}
    rows: list = []
    committed, arrow_cpu = 0, 0.0

    def convert(chunk: list) -> int:
        nonlocal arrow_cpu
        t = time.process_time()
        n = table.to_arrow(chunk).num_rows
        arrow_cpu += time.process_time() - t
        return n

    while True:
        try:
            batch = part.next_batch()
        except StopIteration:
            break
        for run in group_runs(batch):
            logic = logics.get(run.key)
            if logic is None:
                inner = VenueDeltaLogic(stream, book.depth_cap, book.max_buffered_diffs, None)
                logic = logics[run.key] = PositionedLogic(inner, GapRow)
            for positioned in logic.on_item(run)[0]:
                rows += positioned.rows
                if len(rows) >= CONVERT_EVERY:
                    committed += convert(rows)
                    rows = []
    if rows:
        committed += convert(rows)
    worker_cpu = time.process_time() - started
    if committed != corpus.expected_rows:
        raise SystemExit(f"rows {committed} != ground truth {corpus.expected_rows}")
    return client_cpu, worker_cpu, arrow_cpu, len(corpus.frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venue", default="binance-spot")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--read", type=int, default=256, help="frames per socket read")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--per-frame", action="store_true", help="the client's columnar read path off")
    args = parser.parse_args()
    gc.disable()
    best = [float("inf")] * 3
    frames = 0
    for _ in range(args.runs):
        *cpu, frames = run_once(args.venue, args.reps, args.read, not args.per_frame)
        best = [min(b, c) for b, c in zip(best, cpu, strict=True)]
    us = [1e6 * b / frames for b in best]
    path = "per-frame" if args.per_frame else "columnar"
    print(f"{args.venue} {path}: client {us[0]:.2f} us/frame, worker {us[1]:.2f} (Arrow {us[2]:.2f}), "
          f"sum {us[0] + us[1]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
