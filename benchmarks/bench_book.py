"""Order-book benchmark (issue 7 targets: <= 250 ns per level update, <= 100 bytes per resting level).

For every side implementation (`operators.book.levels.SIDES`: the compiled `c` one used by default, and
the pure-Python fallback) it reports:

* ns per level update through `OrderBook.apply` on a 2,000-level book, 10 levels per message, for two
  mixes: *churn* (70 % quantity changes, 15 % new levels, 15 % deletions, near the top of book like real
  diff streams) and *quantity-only* (new quantities for prices already held: the bulk of real diffs).
  Each mix is timed two ways: *batch*, the whole 300,000-update stream built first and then applied in
  one go (as this benchmark always did), and *interleaved*, every 100 messages generated just before
  they are applied and only the applying timed (the generating work evicts the book from the CPU caches
  in between, as parsing and the rest of the pipeline do in the dataflow). CPU time of this process
  (`time.process_time`), best of 3 runs, so that other processes on a shared machine inflate it less.
  CPU time still grows when other jobs share the caches and memory bandwidth (the 17:51 run of
  docs/benchmarks.md: 278 ns right after the two-process section, 185-192 ns on the same code in a quiet
  interleaved comparison), so the report also gives the CPU time of a fixed pure-Python reference loop
  taken just before, and the load average: a slow reference loop means a slow machine, not a slow book.
* the Kraken v1 recording's level updates replayed into a book;
* bytes per resting level: tracemalloc over a 100,000-level book grown level by level (the parsed
  frames' strings are created while tracing, so a book that keeps them is charged for them);
* RSS of 1,000 symbols x 2,000 levels per side (4 M levels) loaded through the real `BookTracker`
  (snapshot + 20 diffs each), in a fresh process per implementation;
* the per-epoch snapshot (`BookLogic.snapshot`) of one 2 x 2,000-level tracker: time and bytes, and the
  deep copy it replaced.

`make bench-book` prints this (about a minute); `benchmarks.run` puts `measure()` in the `make bench` report.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import pickle
import random
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptoflow.model import Kind, RawEvent
from operators.book.levels import SIDES, OrderBook
from operators.book.tracker import BYBIT, BookSettings, BookTracker
from operators.book_logic import BookLogic

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "external"
REPO_ROOT = Path(__file__).resolve().parents[1]
MID = 3_000_000  # 30000.00 in ticks of 0.01
CHUNK = 100  # messages generated at a time for the interleaved measurements


def _price(ticks: int) -> str:
    return f"{ticks / 100:.2f}"


def _qty(rng: random.Random) -> str:
    return f"{rng.uniform(0.001, 5):.8f}"


def fresh_book(side: type, levels: int = 2000, seed: int = 7) -> OrderBook:
    rng = random.Random(seed)
    book = OrderBook(depth_cap=levels * 2, side=side)
    book.load(
        [[_price(MID - 1 - i), _qty(rng)] for i in range(levels)],
        [[_price(MID + 1 + i), _qty(rng)] for i in range(levels)],
    )
    return book


def churn_messages(rng: random.Random, count: int) -> list[tuple[list, list]]:
    """`count` messages of 10 levels: depth from the top ~ exponential (mean 40 ticks), 15 % zero."""
    msgs = []
    for _ in range(count):
        b: list = []
        a: list = []
        for _ in range(10):
            side = b if rng.random() < 0.5 else a
            sign = -1 if side is b else 1
            price = _price(MID + sign * (1 + int(rng.expovariate(1 / 40))))
            side.append([price, "0" if rng.random() < 0.15 else _qty(rng)])
        msgs.append((b, a))
    return msgs


def qty_messages(rng: random.Random, book: OrderBook, count: int) -> list[tuple[list, list]]:
    """New quantities for prices among the best 200 held on each side: the hot path."""
    bids, asks = [p for p, _ in book.bids.top(200)], [p for p, _ in book.asks.top(200)]
    return [
        ([[rng.choice(bids), _qty(rng)] for _ in range(5)], [[rng.choice(asks), _qty(rng)] for _ in range(5)])
        for _ in range(count)
    ]


def reference_ms(repeats: int = 5) -> float:
    """CPU milliseconds of `sum(range(10**6))`, best of `repeats`: how fast this core runs right now."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        sum(range(10**6))
        best = min(best, time.process_time() - start)
    return best * 1e3


def _apply_timed(book: OrderBook, msgs: list) -> tuple[int, float]:
    n = sum(len(b) + len(a) for b, a in msgs)
    apply = book.apply
    start = time.process_time()
    for b, a in msgs:
        apply(b, a)
    return n, time.process_time() - start


def _ns_per_update(run: Callable[[], Iterator[tuple[int, float]]], repeats: int) -> float:
    """Best of `repeats` runs; a run yields (updates, CPU seconds) per timed batch."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            n = secs = 0.0
            for k, s in run():
                n, secs = n + k, secs + s
        finally:
            gc.enable()
        best = min(best, secs / n * 1e9)
    return best


def time_mixes(side: type, updates: int, repeats: int) -> dict[str, float]:
    count = updates // 10

    def churn_batch() -> Iterator[tuple[int, float]]:
        book, msgs = fresh_book(side), churn_messages(random.Random(11), count)
        yield _apply_timed(book, msgs)

    def churn_interleaved() -> Iterator[tuple[int, float]]:
        book, rng = fresh_book(side), random.Random(11)
        for _ in range(count // CHUNK):
            yield _apply_timed(book, churn_messages(rng, CHUNK))

    def qty_batch() -> Iterator[tuple[int, float]]:
        book = fresh_book(side)
        yield _apply_timed(book, qty_messages(random.Random(3), book, count))

    def qty_interleaved() -> Iterator[tuple[int, float]]:
        book, rng = fresh_book(side), random.Random(3)
        for _ in range(count // CHUNK):
            yield _apply_timed(book, qty_messages(rng, book, CHUNK))

    return {
        "churn_interleaved_ns": _ns_per_update(churn_interleaved, repeats),
        "churn_batch_ns": _ns_per_update(churn_batch, repeats),
        "qty_only_interleaved_ns": _ns_per_update(qty_interleaved, repeats),
        "qty_only_batch_ns": _ns_per_update(qty_batch, repeats),
    }


def kraken_messages() -> tuple[list, list]:
    snaps, msgs = [], []
    for line in (FIXTURES / "kraken" / "cryptofeed_KRAKEN.ws.50.0").read_text().splitlines()[1:]:
        head, _, payload = line.partition(": ")
        if not payload or " " in head:  # client frames, trailing empty line
            continue
        msg = json.loads(payload)
        if not isinstance(msg, list) or not str(msg[-2]).startswith("book-"):
            continue
        body = {}
        for part in msg[1:-2]:
            body.update(part)
        if "as" in body:
            snaps.append(([lv[:2] for lv in body["bs"]], [lv[:2] for lv in body["as"]]))
        else:
            msgs.append(([lv[:2] for lv in body.get("b", [])], [lv[:2] for lv in body.get("a", [])]))
    return snaps, msgs


def kraken_ns(side: type, repeats: int) -> float:
    snaps, msgs = kraken_messages()

    def run() -> Iterator[tuple[int, float]]:
        book = OrderBook(depth_cap=2000, side=side)
        book.load(*snaps[0])
        yield _apply_timed(book, msgs)

    return _ns_per_update(run, repeats)


def bytes_per_level(side: type, levels: int = 50_000) -> float:
    rng = random.Random(1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    # Strings are created while tracing: a live book holds the parsed frames' own price/qty strings.
    bids = [[_price(MID - i), _qty(rng)] for i in range(levels)]
    asks = [[_price(MID + 1 + i), _qty(rng)] for i in range(levels)]
    book = OrderBook(depth_cap=levels, side=side)
    book.apply(bids, asks)  # level by level, as a live book grows
    del bids, asks
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(book)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_books(impl: str, symbols: int, levels: int) -> dict:
    """In this process: `symbols` trackers, each a `levels`-per-side snapshot + 20 churn diffs."""
    side = SIDES[impl]
    rng = random.Random(2)
    settings = BookSettings(depth_cap=levels, emit=False)
    gc.collect()
    before = _rss_bytes()
    trackers = []
    for s in range(symbols):
        t = BookTracker(BYBIT, settings)
        t.book = OrderBook(levels, side=side)
        bids = [[_price(MID - 1 - i), _qty(rng)] for i in range(levels)]
        asks = [[_price(MID + 1 + i), _qty(rng)] for i in range(levels)]
        t.on_event(RawEvent("bybit", "spot", f"S{s}-USDT", f"S{s}USDT", Kind.DEPTH_SNAPSHOT, 1000, 0, 0, 0,
                            (bids, asks), seq=1))  # fmt: skip
        for u, (b, a) in enumerate(churn_messages(rng, 20), start=2):
            t.on_event(RawEvent("bybit", "spot", f"S{s}-USDT", f"S{s}USDT", Kind.DEPTH_DIFF, 1000 + u, 0, 0, u,
                                (b, a), seq=u))  # fmt: skip
        trackers.append(t)
    del bids, asks
    gc.collect()
    after = _rss_bytes()
    held = sum(len(t.book) for t in trackers)
    assert all(t.valid for t in trackers)
    return {
        "symbols": symbols,
        "levels_per_side": levels,
        "levels_held": held,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "rss_delta_mb": (after - before) / 2**20,
        "bytes_per_level": (after - before) / held,
    }


def rss_in_fresh_process(impl: str, symbols: int, levels: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_book", "--rss", impl, "--symbols", str(symbols),
           "--levels", str(levels)]  # fmt: skip
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def snapshot_cost(side: type, repeats: int = 20) -> dict:
    """One 2 x 2,000-level tracker: `BookLogic.snapshot` (pickle bytes) vs the deep copy it replaced."""
    rng = random.Random(4)
    logic = BookLogic(BYBIT, BookSettings(depth_cap=2000))
    logic.tracker.book = OrderBook(2000, side=side)  # type: ignore[union-attr]
    bids = [[_price(MID - 1 - i), _qty(rng)] for i in range(2000)]
    asks = [[_price(MID + 1 + i), _qty(rng)] for i in range(2000)]
    logic.on_item(
        RawEvent("bybit", "spot", "X-Y", "XY", Kind.DEPTH_SNAPSHOT, 1000, 0, 0, 0, (bids, asks), seq=1)
    )

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        return min(times) * 1e6

    state = logic.snapshot()
    restored = BookLogic(None, logic.settings, state).tracker
    assert restored is not None and restored.book.bids.top(2000) == logic.tracker.book.bids.top(2000)  # type: ignore[union-attr]
    return {
        "snapshot_us": best(logic.snapshot),
        "snapshot_bytes": len(state),
        "restore_us": best(lambda: pickle.loads(state)),
        "deepcopy_us": best(lambda: copy.deepcopy(logic.tracker)),
    }


def measure(quick: bool = False) -> dict:
    """Everything above as a dict (`benchmarks.run` report section)."""
    updates, repeats = (100_000, 2) if quick else (300_000, 3)
    symbols = 100 if quick else 1000
    out: dict = {"updates": updates, "repeats": repeats, "clock": "process CPU time", "impls": {},
                 "load_average": os.getloadavg()[0], "reference_ms": reference_ms()}  # fmt: skip
    for name, side in SIDES.items():
        r = time_mixes(side, updates, repeats)
        r["kraken_replay_ns"] = kraken_ns(side, repeats)
        r["bytes_per_level_tracemalloc"] = bytes_per_level(side)
        r["snapshot"] = snapshot_cost(side)
        r["rss"] = rss_in_fresh_process(name, symbols, 2000)
        out["impls"][name] = r
    out["default"] = "c" if "c" in SIDES else "python"
    return out


def print_report(m: dict) -> None:
    print(f"order book, {m['updates']:,} level updates per mix, 10 levels per message, ns of {m['clock']} "
          f"per level update, best of {m['repeats']} (default side: {m['default']})")  # fmt: skip
    print(f"machine: load average {m['load_average']:.1f}, reference loop sum(range(10**6)) "
          f"{m['reference_ms']:.1f} ms CPU (higher = a slower machine right now, not a slower book)")  # fmt: skip
    for name, r in m["impls"].items():
        s, rss = r["snapshot"], r["rss"]
        print(f"[{name}]")
        for label, key in (("churn mix (70/15/15):  ", "churn"), ("quantity changes only: ", "qty_only")):
            batch, mixed = r[f"{key}_batch_ns"], r[f"{key}_interleaved_ns"]
            print(f"  {label} {batch:6.0f} ns/update batch ({1e9 / batch:,.0f} level-updates/s), "
                  f"{mixed:6.0f} interleaved ({1e9 / mixed:,.0f}/s)")  # fmt: skip
        print(f"  kraken v1 replay:       {r['kraken_replay_ns']:6.0f} ns/update")
        print(f"  memory: {r['bytes_per_level_tracemalloc']:.0f} bytes per resting level (tracemalloc, "
              "100,000-level book, price/qty strings included)")  # fmt: skip
        print(f"  RSS: {rss['symbols']:,} symbols x {rss['levels_per_side']:,} levels per side "
              f"({rss['levels_held']:,} levels) through BookTracker: +{rss['rss_delta_mb']:,.0f} MB "
              f"= {rss['bytes_per_level']:.0f} bytes per level")  # fmt: skip
        print(f"  epoch snapshot of a 2x2,000-level tracker: {s['snapshot_us']:,.0f} us, "
              f"{s['snapshot_bytes']:,} bytes (restore {s['restore_us']:,.0f} us; deep copy "
              f"{s['deepcopy_us']:,.0f} us)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer updates, 100 symbols for RSS")
    parser.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    parser.add_argument("--rss", choices=["c", "python"], help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--symbols", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--levels", type=int, default=2000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss:
        print(json.dumps(rss_books(args.rss, args.symbols, args.levels)))
        return
    m = measure(args.quick)
    if args.json:
        print(json.dumps(m, indent=2))
    else:
        print_report(m)


if __name__ == "__main__":
    main()
