"""The sink's sort of a write: Arrow's sort against `sort_rows`, rows in order and rows interleaved.

`python -m benchmarks.sort_rows [--rows 250000] [--symbols 4]` builds `spot_delta` rows shaped like a
Binance depth stream (20 levels a message), cuts them into the stager's 250-row IPC pieces and reads
them back as the sink child does (one table of many chunks), then times, CPU per call, median of
`--repeats`: Arrow's `sort_by` and `sort_rows`, on rows of one symbol in exchange order (a one-symbol
shard: nothing to sort) and on the same rows of `--symbols` symbols whose messages interleave (a
many-symbol shard: the check is the overhead). Last, the whole write stage (sort, then the data files
the sink writes, on a temporary SqlCatalog table) of the one-symbol rows read from pieces of 250 to
10,000 rows: after Arrow's sort, as they are, combined into one chunk, and after `sort_rows` (the
order check, then combined).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import pyarrow as pa

from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.ordering import in_sort_order, sort_rows
from connectors.iceberg.staging import from_ipc, to_ipc, write_data_files
from cryptoflow.config import CatalogConfig, ParquetConfig
from cryptoflow.schemas import ARROW_DECIMAL, TABLES

SPOT_DELTA = TABLES["spot_delta"]
LEVELS_PER_MESSAGE = 20
PIECE_ROWS = 250  # the stager's piece (sink.convert_every)
START_US = 1_790_000_000_000_000


def delta_rows(rows: int, symbols: int) -> pa.Table:
    """`rows` level rows of depth messages, round robin over `symbols` symbols, each symbol's messages
    in exchange order (time and update id rising)."""
    message = [i // LEVELS_PER_MESSAGE for i in range(rows)]
    symbol = [f"SYM{m % symbols}USDT" for m in message]
    ts = [START_US + m * 1_000 for m in message]
    seq = [1_000_000 + m for m in message]
    price = pa.array([f"{60000 + i % 997}.{i % 100:02d}" for i in range(rows)]).cast(ARROW_DECIMAL)
    qty = pa.array([f"0.{i % 9973:05d}" for i in range(rows)]).cast(ARROW_DECIMAL)
    columns = {
        "exchange": pa.array(["binance"] * rows),
        "market": pa.array(["spot"] * rows),
        "symbol": pa.array(symbol),
        "exchange_symbol": pa.array(symbol),
        "exchange_ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "ingest_ts": pa.array([t + 800 for t in ts], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "side": pa.array(["bid" if (i // 10) % 2 == 0 else "ask" for i in range(rows)]),
        "price": price,
        "qty": qty,
        "seq": pa.array(seq, pa.int64()),
        "first_seq": pa.array(seq, pa.int64()),
        "prev_seq": pa.array([s - 1 for s in seq], pa.int64()),
        "is_snapshot": pa.array([False] * rows),
        "shard": pa.array([0] * rows, pa.int32()),
        "source_offset": pa.array(message, pa.int64()),
    }
    return pa.Table.from_pydict(columns).cast(SPOT_DELTA.arrow_schema)


def as_the_child_reads_it(table: pa.Table, piece_rows: int = PIECE_ROWS) -> pa.Table:
    """The rows as stager pieces: IPC streams of `piece_rows` rows, read back into one table."""
    blobs = [to_ipc(table.slice(i, piece_rows)) for i in range(0, table.num_rows, piece_rows)]
    read = from_ipc(blobs)
    assert read is not None
    return read


def cpu_ms(call: Callable[[], object], repeats: int) -> float:
    """Median CPU time of one call (this thread plus Arrow's pool: process time)."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        call()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def write_stage(rows: pa.Table, repeats: int) -> None:
    """CPU of sorting `rows` (one symbol, in order) and writing their data files, per piece size."""
    keys = SPOT_DELTA.sort_keys
    with tempfile.TemporaryDirectory() as scratch:
        config = CatalogConfig(uri=f"sqlite:///{scratch}/catalog.db", warehouse=f"{scratch}/wh")
        table = ensure_table(load_catalog(config), "bench", SPOT_DELTA, ParquetConfig())
        for piece_rows in (PIECE_ROWS, 2_500, 5_000, 10_000):
            read = as_the_child_reads_it(rows, piece_rows)
            ways: dict[str, Callable[[], pa.Table]] = {
                "Arrow's sort": lambda t=read: t.sort_by(keys),
                "as they are": lambda t=read: t,
                "combined": lambda t=read: t.combine_chunks(),
                "sort_rows": lambda t=read: sort_rows(t, keys),
            }
            spent = {
                way: cpu_ms(lambda s=sort: write_data_files(table, s()), repeats)
                for way, sort in ways.items()
            }
            print(
                f"sort + data files, pieces of {piece_rows:,} rows: "
                + ", ".join(f"{way} {ms:.0f} ms" for way, ms in spent.items())
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    keys = SPOT_DELTA.sort_keys
    one_symbol = delta_rows(args.rows, 1)
    for label, rows in (
        ("one symbol, in order", one_symbol),
        (f"{args.symbols} symbols interleaved", delta_rows(args.rows, args.symbols)),
    ):
        table = as_the_child_reads_it(rows)
        skipped = in_sort_order(table, keys)
        assert sort_rows(table, keys).equals(table.sort_by(keys))
        arrow = cpu_ms(lambda t=table: t.sort_by(keys), args.repeats)
        ours = cpu_ms(lambda t=table: sort_rows(t, keys), args.repeats)
        print(
            f"{label}: {table.num_rows:,} rows in {table.column('symbol').num_chunks} chunks: "
            f"Arrow's sort_by {arrow:.1f} ms, sort_rows {ours:.1f} ms of CPU "
            f"({'no sort' if skipped else 'sorted'}; {ours / arrow:.2f}x Arrow's sort)"
        )
    write_stage(one_symbol, args.repeats)


if __name__ == "__main__":
    main()
