"""Where an epoch's sink work goes: per-stage wall and CPU time of one spot_ob epoch.

`python -m benchmarks.sink_stages [--rows 100000] [--epochs 3]` builds `--rows` BookRows shaped like
the latency benchmark's (100 symbols, 10 levels a side, decimal text) = one 10 s epoch at 10k frames/s,
and times the stages the sink runs per epoch on a temporary SqlCatalog table: Arrow conversion (in
CONVERT_EVERY pieces), concat, sort, the Parquet data files (pyiceberg's writer), the Iceberg commit of
those files, and the pickled size of the staged DataFiles (what Bytewax stores per snapshot).
"""

from __future__ import annotations

import argparse
import pickle
import random
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.sink import IcebergSinkPartition
from connectors.iceberg.staging import append_files, write_data_files
from cryptoflow.config import CatalogConfig, ParquetConfig, SinkConfig
from cryptoflow.model import BookRow
from cryptoflow.schemas import TABLES

SPOT_OB = TABLES["spot_ob"]
CONVERT_EVERY_BEFORE = 20_000  # the sink's conversion piece before the two-phase commit


def book_rows(n: int, symbols: int = 100, depth: int = 10, seed: int = 1) -> list[BookRow]:
    rng = random.Random(seed)
    start = 1_790_000_000_000_000
    rows = []
    for i in range(n):
        s = rng.randrange(symbols)
        mid = 100 + s * 7.5 + rng.random()
        bids = [(f"{mid - 0.01 * (k + 1):.5f}", f"{rng.random() * 10:.8f}") for k in range(depth)]
        asks = [(f"{mid + 0.01 * (k + 1):.5f}", f"{rng.random() * 10:.8f}") for k in range(depth)]
        ts = start + i * 100
        sym = f"S{s:03d}"
        row = BookRow(
            "kraken", "spot", f"{sym}-USD", f"{sym}/USD", ts, ts + 900, None, bids, asks,
            bids[0][0], asks[0][0], f"{mid:.6f}", "0.02", True, False, 0, i,
        )  # fmt: skip
        rows.append(row)
    return rows


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000


def epoch_stages(table, rows: list[BookRow], baseline: bool = False) -> str:
    """One epoch's stages on `rows`, as the sink ran them in the worker before the two-phase commit.
    `baseline`: the conversion without the C level parser and pyiceberg's own `_dataframe_to_data_files`
    (the code before both were made cheaper), for before/after numbers in one session."""
    from unittest import mock

    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    import cryptoflow.schemas as schemas

    if baseline:
        with (
            mock.patch.object(schemas, "book_levels", None),
            mock.patch.object(schemas, "decimal_column", None),
        ):
            return epoch_stages_with(
                table, rows, lambda a: list(_dataframe_to_data_files(table.metadata, a, table.io))
            )
    return epoch_stages_with(table, rows, lambda a: write_data_files(table, a))


def epoch_stages_with(table, rows: list[BookRow], write) -> str:
    every = CONVERT_EVERY_BEFORE
    pieces, conv_w, conv_c = [], 0.0, 0.0
    for i in range(0, len(rows), every):
        chunk = rows[i : i + every]
        piece, w, c = timed(lambda: SPOT_OB.to_arrow(chunk))  # noqa: B023 - called at once
        pieces.append(piece)
        conv_w, conv_c = conv_w + w, conv_c + c
    arrow, cat_w, cat_c = timed(lambda: pa.concat_tables(pieces))
    arrow, sort_w, sort_c = timed(lambda: arrow.sort_by(SPOT_OB.sort_keys))
    files, write_w, write_c = timed(lambda: write(arrow))

    def commit() -> None:
        tx = table.transaction()
        append_files(tx, files, {})
        tx.commit_transaction()

    _, commit_w, commit_c = timed(commit)
    n = len(rows)
    return (
        f"convert {conv_w:.0f}/{conv_c:.0f} ({conv_c / n * 1000:.1f} us CPU/row)  concat {cat_w:.1f}/{cat_c:.1f}  sort {sort_w:.0f}/{sort_c:.0f}  "
        f"parquet files {write_w:.0f}/{write_c:.0f} ({write_c / n * 1000:.1f} us CPU/row, {len(files)} files)  commit {commit_w:.0f}/{commit_c:.0f}  "
        f"pickled DataFiles {len(pickle.dumps(files))} bytes"
    )


def paced_epoch(p, rows: list[BookRow], rate: float, load, batch: int = 10) -> str:
    """Feed `rows` to the two-phase sink partition at `rate` rows/s in batches of `batch` (as the flow's
    worker would at 10k frames/s), then end the epoch: the worker's time in `write_batch` (the
    hand-over) and in `snapshot()` (the seal), this process's CPU for the epoch (with
    `--executor process` the files and the commit run in the sink child, not here), the pickled state
    Bytewax stores and the epoch's files."""
    cpu_start = time.process_time()
    start, in_write, longest = time.perf_counter(), 0.0, 0.0
    for i in range(0, len(rows), batch):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        t = time.perf_counter()
        p.write_batch(rows[i : i + batch])
        took = time.perf_counter() - t
        in_write, longest = in_write + took, max(longest, took)
    fed = time.perf_counter() - start
    state, seal_w, seal_c = timed(p.snapshot)
    _, drain_w, _ = timed(getattr(p, "drain", lambda: None))  # the sink before had no background
    cpu = (time.process_time() - cpu_start) * 1000
    summary = load().current_snapshot().summary.additional_properties
    tail = sum(len(b) for s in getattr(state, "staged", ()) for b in getattr(s, "tail", ()))
    return (
        f"fed {len(rows)} rows in {fed:.1f} s; worker in write_batch {in_write * 1000:.0f} ms total "
        f"({in_write / (len(rows) / batch) * 1e6:.0f} us per batch of {batch}, longest {longest * 1000:.1f} ms); "
        f"snapshot() {seal_w:.0f} ms wall "
        f"/ {seal_c:.0f} ms process CPU; background commit then took {drain_w:.0f} ms more; "
        f"this process's CPU for the epoch {cpu:.0f} ms; "
        f"state {len(pickle.dumps(state)):,} bytes pickled (tail IPC {tail:,}); "
        f"{summary.get('added-data-files')} files in the epoch's commit"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument(
        "--paced", type=float, help="instead: feed the two-phase sink at this many rows/s, time the worker"
    )
    ap.add_argument("--stage-rows", type=int, default=25_000, help="sink.stage_rows (--paced)")
    ap.add_argument(
        "--executor", choices=["thread", "process"], default="thread", help="sink.executor (--paced)"
    )
    ap.add_argument(
        "--compare",
        action="store_true",
        help="alternate the baseline (Python levels, pyiceberg writer) and now",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog_cfg = CatalogConfig(uri=f"sqlite:///{Path(tmp) / 'c.db'}", warehouse=str(Path(tmp) / "wh"))
        catalog = load_catalog(catalog_cfg)
        ensure_table(catalog, "cryptoflow", SPOT_OB, ParquetConfig())
        if args.paced:
            table = catalog.load_table(("cryptoflow", "spot_ob"))
            sink_cfg = SinkConfig(
                **({"stage_rows": args.stage_rows} if "stage_rows" in SinkConfig.model_fields else {})
            )
            remote = None
            if args.executor == "process":
                from connectors.iceberg.remote import RemoteTable, SinkProcess

                remote = RemoteTable(SinkProcess.shared(), catalog_cfg, "cryptoflow", "spot_ob")
            p = IcebergSinkPartition(SPOT_OB, table, "bench/spot_ob", None, sink_cfg, remote=remote)

            def load():
                return catalog.load_table(("cryptoflow", "spot_ob"))

            for epoch in range(args.epochs):
                print(f"epoch {epoch}: {paced_epoch(p, book_rows(args.rows, seed=epoch), args.paced, load)}")
            p.close()
            print(
                f"{args.rows} rows per epoch at {args.paced:g} rows/s, sink.stage_rows {args.stage_rows}, "
                f"sink.executor {args.executor}"
            )
            return
        print(f"{args.rows} spot_ob rows per epoch; ms wall / ms CPU of this process")
        for epoch in range(args.epochs):
            table = catalog.load_table(("cryptoflow", "spot_ob"))
            rows = book_rows(args.rows, seed=epoch)
            if args.compare:
                print(f"epoch {epoch} baseline: {epoch_stages(table, rows, baseline=True)}")
                table = catalog.load_table(("cryptoflow", "spot_ob"))
            print(f"epoch {epoch}: {epoch_stages(table, rows)}")


if __name__ == "__main__":
    main()
