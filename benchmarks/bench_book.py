"""Order-book micro-benchmark (issue 7 targets: <= 250 ns per level update, <= 100 bytes per level).

Prints level updates per second and ns per update for (1) a synthetic stream on a 2,000-level book
(70 % quantity changes, 15 % new levels, 15 % deletions, near the top of book like real diff streams)
and (2) the real Kraken v1 and Coinbase recordings' level updates replayed into the book, plus resident
bytes per level measured with tracemalloc. Run with `make bench-book` (takes a few seconds).
"""

from __future__ import annotations

import gc
import json
import random
import time
import tracemalloc
from pathlib import Path

from operators.book.levels import OrderBook

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "external"


def _price(ticks: int) -> str:
    return f"{ticks / 100:.2f}"


def synthetic(levels: int = 2000, updates: int = 300_000, seed: int = 7) -> tuple[OrderBook, list]:
    rng = random.Random(seed)
    mid = 3_000_000  # 30000.00 in ticks
    bids = [[_price(mid - 1 - i), f"{rng.uniform(0.001, 5):.8f}"] for i in range(levels)]
    asks = [[_price(mid + 1 + i), f"{rng.uniform(0.001, 5):.8f}"] for i in range(levels)]
    book = OrderBook(depth_cap=levels * 2)
    book.load(bids, asks)
    msgs = []
    for _ in range(updates // 10):  # 10 levels per message, like a 100 ms diff
        b, a = [], []
        for _ in range(10):
            side = b if rng.random() < 0.5 else a
            sign = -1 if side is b else 1
            depth = int(rng.expovariate(1 / 40))
            price = _price(mid + sign * (1 + depth))
            r = rng.random()
            qty = "0" if r < 0.15 else f"{rng.uniform(0.001, 5):.8f}"
            side.append([price, qty])
        msgs.append((b, a))
    return book, msgs


def qty_only(book: OrderBook, updates: int = 300_000, seed: int = 3) -> list:
    """Quantity changes of prices already in the book: the hot path (most real diff levels)."""
    rng = random.Random(seed)
    bids, asks = book.bids.top(200), book.asks.top(200)
    msgs = []
    for _ in range(updates // 10):
        b = [[rng.choice(bids)[0], f"{rng.uniform(0.001, 5):.8f}"] for _ in range(5)]
        a = [[rng.choice(asks)[0], f"{rng.uniform(0.001, 5):.8f}"] for _ in range(5)]
        msgs.append((b, a))
    return msgs


def time_apply(book: OrderBook, msgs: list) -> tuple[int, float]:
    n = sum(len(b) + len(a) for b, a in msgs)
    gc.disable()
    start = time.perf_counter()
    apply = book.apply
    for b, a in msgs:
        apply(b, a)
    elapsed = time.perf_counter() - start
    gc.enable()
    return n, elapsed


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


def bytes_per_level(levels: int = 50_000) -> float:
    rng = random.Random(1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    # Strings are created while tracing: a live book holds the parsed frames' own price/qty strings.
    bids = [[_price(3_000_000 - i), f"{rng.uniform(0.001, 5):.8f}"] for i in range(levels)]
    asks = [[_price(3_000_001 + i), f"{rng.uniform(0.001, 5):.8f}"] for i in range(levels)]
    book = OrderBook(depth_cap=levels)
    book.apply(bids, asks)  # level by level, as a live book grows (strings are the parsed frame's own)
    del bids, asks
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(book)


def main() -> None:
    book, msgs = synthetic()
    n, elapsed = time_apply(book, msgs)
    print(f"synthetic 2000-level book: {n:,} level updates in {elapsed:.3f} s -> "
          f"{n / elapsed:,.0f} level-updates/s, {elapsed / n * 1e9:.0f} ns/update")  # fmt: skip
    book, _ = synthetic(updates=10)
    n, elapsed = time_apply(book, qty_only(book))
    print(f"quantity changes only:     {n:,} level updates in {elapsed:.3f} s -> "
          f"{n / elapsed:,.0f} level-updates/s, {elapsed / n * 1e9:.0f} ns/update")  # fmt: skip
    snaps, kmsgs = kraken_messages()
    book = OrderBook(depth_cap=2000)
    book.load(*snaps[0])
    n, elapsed = time_apply(book, kmsgs)
    print(f"kraken v1 recording replay:  {n:,} level updates in {elapsed:.3f} s -> "
          f"{n / elapsed:,.0f} level-updates/s, {elapsed / n * 1e9:.0f} ns/update")  # fmt: skip
    print(
        f"memory: {bytes_per_level():.0f} bytes per resting level (tracemalloc, 100,000-level book, "
        "price/qty strings included)"
    )


if __name__ == "__main__":
    main()
