"""Kraken v2 book frames without sockets: CPU time per frame of each in-process stage.

Why: the latency benchmark (`benchmarks.latency`) runs the whole flow over loopback and mixes these costs
with the socket, Bytewax and the sink; this separates the three stages a Kraken book frame goes through
on our side, so a change to one of them shows as a number:

* **parse**: `KrakenV2Parser.parse` of the frame text (the compiled lean parse, the decoder otherwise);
* **client check**: the client's checksum-only book (`KrakenChecksumBook.on_event`, what decides a
  resubscribe);
* **worker**: the dataflow's `BookLogic.on_run` (the `BookTracker` rules, rows, latency histograms) on
  each batch's per-book runs, as `PositionedLogic` hands them over.

Frames: the synthetic market's Kraken v2 frames as the paced venue sends them (`--books` books, depth 10,
a snapshot per book first, then `--frames` updates stamped 0.1 ms apart, i.e. 10k frames/s of exchange
time), in batches of `--batch` frames; `--snapshot-interval-ms 1` makes the worker write a `spot_ob` row
for every frame instead of one per book per 100 ms of exchange time (the row cost in full). Clock: this
process's CPU time (`time.process_time`), best of `--repeats`, so other processes on a shared machine
inflate it less. Nothing is asserted about speed;
the stages are checked to agree (no break anywhere on this clean stream).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from connectors.kraken.parsing import KrakenV2Parser
from cryptoflow.model import RawEvent
from cryptoflow.simulator.synthetic.market import SyntheticMarket
from cryptoflow.simulator.synthetic.paced import TAIL, pregenerate
from operators.book.checksum_book import KrakenChecksumBook
from operators.book.tracker import KRAKEN, BookSettings
from operators.book_logic import BookLogic

START = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)


def frames(books: int, count: int) -> list[str]:
    """Every book's snapshot, then `count` updates, each stamped 100 us after the previous frame."""
    market = SyntheticMarket([f"S{i:03d}-USD" for i in range(books)], depth=10, seed=5, keep_truth=False)
    pre = pregenerate(market, count)
    heads = [*pre.snapshots.values(), *pre.heads]
    out = []
    for i, head in enumerate(heads):
        stamp = (START + timedelta(microseconds=100 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        out.append((head + stamp + TAIL).decode())
    return out


def _best(run: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def measure(
    books: int = 50, count: int = 20_000, batch: int = 64, repeats: int = 5, snapshot_interval_ms: int = 100
) -> dict:
    texts = frames(books, count)
    parser = KrakenV2Parser(10)
    events: list[RawEvent] = []

    def parse() -> None:
        events.clear()
        for i, raw in enumerate(texts):
            events.extend(parser.parse(raw, 1_000_000 + i))

    def client() -> None:
        mirrors: dict[str, KrakenChecksumBook] = {}
        breaks = 0
        for ev in events:
            book = mirrors.get(ev.exchange_symbol)
            if book is None:
                book = mirrors[ev.exchange_symbol] = KrakenChecksumBook()
            if book.on_event(ev) is not None:
                breaks += 1
        if breaks:
            raise AssertionError(f"{breaks} checksum-book breaks on a clean stream")

    runs: list[list[list[RawEvent]]] = []  # per batch: each book's events in arrival order

    def worker() -> None:
        settings = BookSettings(stream="spot_ob", snapshot_interval_ms=snapshot_interval_ms)
        logics: dict[str, BookLogic] = {}
        rows = 0
        for batch_runs in runs:
            for run in batch_runs:
                key = run[0].exchange_symbol
                logic = logics.get(key)
                if logic is None:
                    logic = logics[key] = BookLogic(KRAKEN, settings)
                out, _offsets, _ = logic.on_run(run)
                rows += len(out)
        gaps = sum(logic.tracker.counters.gaps for logic in logics.values())  # type: ignore[union-attr]
        if gaps or not rows:
            raise AssertionError(f"worker: {gaps} gaps, {rows} rows on a clean stream")

    parse_s = _best(parse, repeats)
    for i in range(0, len(events), batch):
        per_book: dict[str, list[RawEvent]] = {}
        for ev in events[i : i + batch]:
            per_book.setdefault(ev.exchange_symbol, []).append(ev)
        runs.append(list(per_book.values()))
    client_s = _best(client, repeats)
    worker_s = _best(worker, repeats)
    n = len(texts)
    us = {
        "parse_us": parse_s / n * 1e6,
        "client_check_us": client_s / n * 1e6,
        "worker_us": worker_s / n * 1e6,
    }
    return {"frames": n, "books": books, "batch": batch, "repeats": repeats, "clock": "process CPU time",
            "snapshot_interval_ms": snapshot_interval_ms,
            **us, "total_us": sum(us.values())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=50)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--snapshot-interval-ms", type=int, default=100, help="book row interval (1: a row per frame)"
    )
    parser.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    args = parser.parse_args()
    m = measure(args.books, args.frames, args.batch, args.repeats, args.snapshot_interval_ms)
    if args.json:
        print(json.dumps(m))
        return
    print(f"Kraken v2, {m['frames']:,} frames of {m['books']} books, batches of {m['batch']}, "
          f"{m['clock']} per frame, best of {m['repeats']}: parse {m['parse_us']:.1f} us, client check "
          f"{m['client_check_us']:.1f} us, worker BookLogic {m['worker_us']:.1f} us, total {m['total_us']:.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
