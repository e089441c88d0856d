"""Our end-to-end path in one process (`-w 1`), as fast as the frames can be handed over.

The network is the only thing replaced: the flow is `dataflows.common.build_stream_flow` wired exactly
as `dataflows/spot_delta.build_flow` (USD-M: `futures_delta`) does it, on the production Binance source
(`connectors.binance.source`) whose per-shard clients are the production `BinanceClient`s, never
started: a feeder thread per shard pushes the corpus's frames through the client's `_on_frame` (ingest
stamp, `parse_ws_frame`, duplicate filter, the client's id-only sequencer, metrics, the bounded queue
with its backpressure; snapshot *requests* are no-ops) and injects each REST snapshot as
`_fetch_snapshot` does (`parse_depth_snapshot`, `on_snapshot`, put). Downstream: ShardedSource ->
per-key runs -> `PositionedLogic(VenueDeltaLogic)` -> branch -> exactly-once `iceberg_sink` for the
delta table and for `gaps`, on a temporary SqlCatalog warehouse, run by `bytewax.testing.run_main` with
the 10 s epoch that `python -m bytewax.run` uses without recovery. The clock stops when run_main
returns, i.e. after the last epoch's Iceberg commit.

CLI (used for the 1-vs-2-process run): `python -m benchmarks.ours_inproc --venue binance-spot --reps N`
prints one JSON result line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

from benchmarks.corpus import BinanceCorpus, binance_instruments_json, load_binance
from connectors.binance.client import BinanceClient, now_us
from connectors.binance.parsing import parse_depth_snapshot, parse_exchange_info
from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.sink import IcebergSink
from connectors.registry import sources_for
from connectors.signals import END
from connectors.source import ShardedSource
from connectors.ws_client import MAX_BATCH_FRAMES
from cryptoflow.config import CatalogConfig, Settings, load_settings
from cryptoflow.model import Market
from cryptoflow.schemas import TABLES
from cryptoflow.sharding import group_by_shard
from dataflows.common import build_stream_flow
from operators.sequencing.binance import spot_verdict, usdm_verdict
from operators.sequencing.sync import DiffSync
from operators.venue_delta import VenueDeltaLogic

EPOCH = timedelta(seconds=10)
# Frames per `_on_frames` call: what one socket read hands over when the client is the bottleneck
# (the socket then holds up to websockets' `max_queue` messages, `connectors.ws_client.MAX_BATCH_FRAMES`).
FEED_BATCH = MAX_BATCH_FRAMES


@dataclass
class E2EResult:
    seconds: float
    frames: int
    rows_committed: int
    rows_expected: int
    commits: int
    started_at: float  # wall clock, for aggregating concurrent processes
    ended_at: float
    cpu_per_wall: float  # process CPU seconds per wall second during the run (all threads)
    gap_rows: int = 0  # rows in `gaps`: the corpus is one contiguous chain per symbol, so none
    cores: int = 0  # cores this process may run on (0: not known here)
    child_cores: int = 0  # cores its sink child may run on (0: no child)
    child_cpu_per_wall: float = 0.0  # the sink child's share of cpu_per_wall (sort, Parquet files, commit)

    @property
    def valid(self) -> bool:
        return self.rows_committed == self.rows_expected and self.gap_rows == 0


class RecordingFeeder:
    """Stands in for the socket of one shard's client: same frame path, no network."""

    def __init__(
        self, client: BinanceClient, schedule: list[tuple[str, str]], corpus: BinanceCorpus,
        batch: int = FEED_BATCH,
    ) -> None:  # fmt: skip
        self.client, self.schedule, self.corpus, self.batch = client, schedule, corpus, batch
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"feeder-{self.client.shard}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.client._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        client, batch, size = self.client, [], self.batch
        try:
            for kind, item in self.schedule:
                if kind == "ws":
                    batch.append(item)
                    if len(batch) >= size:
                        client._on_frames(batch)
                        batch = []
                    continue
                if batch:
                    client._on_frames(batch)
                    batch = []
                inst = client.instruments[item]  # mirror of BinanceClient._fetch_snapshot
                event = parse_depth_snapshot(self.corpus.snapshots[item].body, inst, client.shard, now_us())
                client.syncs[item].on_snapshot(None, event.seq)
                client._put(event)
            if batch:
                client._on_frames(batch)
        finally:
            client._put(END)


def stream_of(corpus: BinanceCorpus) -> str:
    """The product stream a corpus belongs to: spot -> `spot_delta`, USD-M -> `futures_delta`."""
    return "futures_delta" if corpus.market == "perp" else "spot_delta"


def _settings(corpus: BinanceCorpus, warehouse: Path) -> Settings:
    market = "USDM" if corpus.market == "perp" else "SPOT"
    env = {
        f"CRYPTOFLOW_EXCHANGES__BINANCE__{market}__ENABLED": "true",
        f"CRYPTOFLOW_EXCHANGES__BINANCE__{market}__SYMBOLS": "[" + ", ".join(corpus.symbols) + "]",
        "CRYPTOFLOW_CATALOG__TYPE": "sql",
        "CRYPTOFLOW_CATALOG__URI": f"sqlite:///{warehouse / 'catalog.db'}",
        "CRYPTOFLOW_CATALOG__WAREHOUSE": str(warehouse),
    }
    return load_settings(environ=env)


def _split_schedule(corpus: BinanceCorpus, symbols: set[str]) -> list[tuple[str, str]]:
    out = []
    for kind, item in corpus.schedule:
        symbol = item if kind == "rest" else orjson.loads(item)["data"]["s"]
        if symbol in symbols:
            out.append((kind, item))
    return out


def build_flow(corpus: BinanceCorpus, settings: Settings, feed_batch: int = FEED_BATCH) -> Dataflow:
    """`dataflows.spot_delta.build_flow` (USD-M: `futures_delta`) exactly as deployed, except that each
    shard's client reads the corpus from a feeder thread instead of a socket."""
    stream = stream_of(corpus)
    source_name = "binance_usdm" if corpus.market == "perp" else "binance_spot"
    market = Market.PERP if corpus.market == "perp" else Market.SPOT
    verdict = usdm_verdict if corpus.market == "perp" else spot_verdict
    instruments = parse_exchange_info(orjson.dumps({"symbols": binance_instruments_json(corpus)}), market)
    sources = sources_for(settings, stream)
    if [name for name, _ in sources] != [source_name]:
        raise RuntimeError(f"bench settings must configure only {source_name}, got {[n for n, _ in sources]}")
    source = sources[0][1]
    assert isinstance(source, ShardedSource)
    by_shard = group_by_shard("binance-usdm" if corpus.market == "perp" else "binance", corpus.symbols,
                              settings.sharding.total_shards)  # fmt: skip
    schedules = {shard: _split_schedule(corpus, set(syms)) for shard, syms in by_shard.items()}
    make_real_clients = source.make_clients

    def make_clients(shard: int, out: queue.Queue) -> list[RecordingFeeder]:
        clients = make_real_clients(shard, out)  # the production client of this shard, never started
        client = clients[0]
        assert isinstance(client, BinanceClient) and sorted(client.symbols) == sorted(by_shard[shard])
        client.instruments = instruments
        client.syncs = {s: DiffSync(verdict) for s in by_shard[shard]}
        # The live client would start an HTTP fetch here; the feeder delivers the recorded snapshot at
        # its recorded position in the stream instead.
        client._request_snapshot = lambda *args, **kwargs: None
        return [RecordingFeeder(client, schedules[shard], corpus, feed_batch)]

    source.make_clients = make_clients
    book = settings.book
    return build_stream_flow(
        stream, settings,
        lambda resume: VenueDeltaLogic(stream, book.depth_cap, book.max_buffered_diffs, resume),
        with_gaps=True, sources=[(source_name, source)],
    )  # fmt: skip


def iceberg_sinks(step: Any) -> list[IcebergSink]:
    """The Iceberg sinks of a flow's output steps (`IcebergSink.prepare` runs in the background)."""
    found = []
    for sub in getattr(step, "substeps", []):
        if isinstance(getattr(sub, "sink", None), IcebergSink):
            found.append(sub.sink)
        found += iceberg_sinks(sub)
    return found


def committed(catalog_cfg: CatalogConfig, stream: str = "spot_delta") -> tuple[int, int]:
    """(rows, commits) of a table, from Iceberg metadata."""
    table = load_catalog(catalog_cfg).load_table((catalog_cfg.namespace, stream))
    snap = table.current_snapshot()
    rows = int(snap.summary["total-records"]) if snap is not None else 0
    return rows, len(table.metadata.snapshots)


def run_inproc(
    corpus: BinanceCorpus,
    warehouse: Path | None = None,
    profiler=None,
    feed_batch: int = FEED_BATCH,
    ready: Callable[[], None] | None = None,
) -> E2EResult:
    """One timed run; `ready` (if given) is called once everything is built, right before the clock
    starts: the process benchmark uses it to start concurrent runs together."""
    with tempfile.TemporaryDirectory(prefix="cryptoflow-bench-") as tmp:
        root = Path(warehouse or tmp)
        settings = _settings(corpus, root)
        stream, catalog = stream_of(corpus), load_catalog(settings.catalog)
        for table in (stream, "gaps"):
            ensure_table(catalog, settings.catalog.namespace, TABLES[table], settings.parquet)
        flow = build_flow(corpus, settings, feed_batch)
        for sink in iceberg_sinks(flow):  # deployed, the catalog is ready while the clients connect
            sink.wait_prepared()
        if ready is not None:
            ready()
        if profiler is not None:
            profiler.start()
        started_at = time.time()
        cpu0, child0 = _cpu_seconds()
        started = time.perf_counter()
        run_main(flow, epoch_interval=EPOCH)
        seconds = time.perf_counter() - started
        cpu1, child1 = _cpu_seconds()
        cpu, child_cpu = cpu1 - cpu0, child1 - child0
        ended_at = time.time()
        if profiler is not None:
            profiler.stop()
        cores, child_cores = _usable_cores(os.getpid()), _usable_cores(_sink_child_pid())
        rows, commits = committed(settings.catalog, stream)
        gap_rows, _ = committed(settings.catalog, "gaps")
    return E2EResult(
        seconds,
        len(corpus.frames),
        rows,
        corpus.expected_rows,
        commits,
        started_at,
        ended_at,
        cpu / seconds,
        gap_rows,
        cores,
        child_cores,
        child_cpu / seconds,
    )


def _wait_for_go() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def _cpu_seconds() -> tuple[float, float]:
    """(this process's CPU time plus its sink child's, the child's alone), from one reading of the child
    (`sink.executor: process` does the Parquet files and the commits there), so CPU per frame covers the
    whole path and the child's share is of the same moments."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    child = _sink_child_cpu_seconds()
    return usage.ru_utime + usage.ru_stime + child, child


def _sink_child_pid() -> int | None:
    from connectors.iceberg.remote import SinkProcess

    child = SinkProcess._shared
    if child is None or child.pid is None or SinkProcess._shared_pid != os.getpid():
        return None
    return child.pid


def _usable_cores(pid: int | None) -> int:
    """How many cores `pid` may run on (the process benchmark binds a process and checks it here)."""
    if pid is None or not hasattr(os, "sched_getaffinity"):
        return 0
    try:
        return len(os.sched_getaffinity(pid))
    except OSError:
        return 0


def _sink_child_cpu_seconds() -> float:
    pid = _sink_child_pid()
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venue", default="binance-spot")
    parser.add_argument("--reps", type=int, required=True)
    parser.add_argument("--batch", type=int, default=FEED_BATCH, help="frames per socket read")
    parser.add_argument(
        "--wait-go",
        action="store_true",
        help="print 'ready' once built and wait for a line on stdin before the timed run",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    corpus = load_binance(args.venue, args.reps)
    result = run_inproc(corpus, feed_batch=args.batch, ready=_wait_for_go if args.wait_go else None)
    print(json.dumps({**asdict(result), "valid": result.valid}))


if __name__ == "__main__":
    main()
