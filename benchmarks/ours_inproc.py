"""Our end-to-end path in one process (`-w 1`), as fast as the frames can be handed over.

The network is the only thing replaced: per shard, a feeder thread pushes the corpus's frames through
the real `BinanceSpotClient._on_frame` (ingest stamp, `parse_ws_frame`, the client's id-only sequencer,
the bounded queue with its backpressure; snapshot *requests* are no-ops) and injects each REST snapshot exactly as `_fetch_snapshot`
does (`parse_depth_snapshot`, `on_snapshot`, put). Everything downstream is the production wiring of
`dataflows/spot_delta.build_flow` (ShardedSource -> key_on -> DeltaSyncLogic -> IcebergSink) on a
temporary SqlCatalog warehouse, run by `bytewax.testing.run_main` with the 10 s epoch that
`python -m bytewax.run` uses without recovery. The clock stops when run_main returns, i.e. after the
last epoch's Iceberg commit.

USD-M frames go through the same client and operator with the USD-M verdict and `market = perp` (there
is no USD-M stream in the product yet; the rows land in a `spot_delta`-shaped table).

CLI (used for the 1-vs-2-process run): `python -m benchmarks.ours_inproc --venue binance-spot --reps N`
prints one JSON result line.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import resource
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

from benchmarks.corpus import BinanceCorpus, binance_instruments_json, load_binance
from connectors.binance.parsing import parse_depth_snapshot, parse_exchange_info
from connectors.binance.spot_client import CHANNEL_DEPTH, BinanceSpotClient, now_us
from connectors.iceberg.catalog import ensure_table, load_catalog
from connectors.iceberg.sink import IcebergSink
from connectors.signals import END
from connectors.source import ShardedSource
from cryptoflow.config import CatalogConfig, Settings, load_settings
from cryptoflow.model import Market
from cryptoflow.schemas import TABLES
from cryptoflow.sharding import group_by_shard
from operators.delta_sync import DeltaSyncLogic
from operators.sequencing.binance import spot_verdict, usdm_verdict
from operators.sequencing.sync import DiffSync

STREAM = "spot_delta"
EPOCH = timedelta(seconds=10)


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

    @property
    def valid(self) -> bool:
        return self.rows_committed == self.rows_expected


class RecordingFeeder:
    """Stands in for the socket of one shard's client: same frame path, no network."""

    def __init__(self, client: BinanceSpotClient, schedule: list[tuple[str, str]], corpus: BinanceCorpus):
        self.client, self.schedule, self.corpus = client, schedule, corpus
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"feeder-{self.client.shard}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.client._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        client = self.client
        try:
            for kind, item in self.schedule:
                if kind == "ws":
                    client._on_frame(item)
                    continue
                inst = client.instruments[item]  # mirror of BinanceSpotClient._fetch_snapshot
                event = parse_depth_snapshot(self.corpus.snapshots[item].body, inst, client.shard, now_us())
                client.syncs[item].on_snapshot(None, event.seq)
                client._put(event)
        finally:
            client._put(END)


def _settings(corpus: BinanceCorpus, warehouse: Path) -> Settings:
    env = {
        "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__SYMBOLS": "[" + ", ".join(corpus.symbols) + "]",
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


def build_flow(corpus: BinanceCorpus, settings: Settings) -> Dataflow:
    """`dataflows.spot_delta.build_flow` with the feeder in place of the socket."""
    market = Market.PERP if corpus.market == "perp" else Market.SPOT
    verdict = usdm_verdict if corpus.market == "perp" else spot_verdict
    instruments = parse_exchange_info(orjson.dumps({"symbols": binance_instruments_json(corpus)}), market)
    by_shard = group_by_shard("binance", corpus.symbols, settings.sharding.total_shards)
    schedules = {shard: _split_schedule(corpus, set(syms)) for shard, syms in by_shard.items()}
    caps = settings.channels.caps_for("binance", STREAM)
    cfg = settings.exchanges.binance.spot

    def make_clients(shard: int, out: queue.Queue) -> list[RecordingFeeder]:
        client = BinanceSpotClient(cfg, settings.connector, by_shard[shard], {CHANNEL_DEPTH}, shard, out)
        client.instruments = instruments
        client.syncs = {s: DiffSync(verdict) for s in by_shard[shard]}
        # The live client would start an HTTP fetch here; the feeder delivers the recorded snapshot at
        # its recorded position in the stream instead.
        client._request_snapshot = lambda *args, **kwargs: None
        return [RecordingFeeder(client, schedules[shard], corpus)]

    source = ShardedSource(
        sorted(by_shard), make_clients, caps.raw_cap, settings.connector.batch_size,
        settings.connector.idle_poll_ms,
    )  # fmt: skip
    flow = Dataflow(f"bench_{STREAM}")
    events = op.input("binance_feed", flow, source)
    keyed = op.key_on("key", events, lambda e: e.key)
    max_buffered = settings.book.max_buffered_diffs
    rows = op.stateful("sequence", keyed, lambda resume: DeltaSyncLogic(verdict, max_buffered, resume))
    op.output("iceberg", rows, IcebergSink(TABLES[STREAM], settings.catalog, settings.parquet, STREAM))
    return flow


def committed(catalog_cfg: CatalogConfig) -> tuple[int, int]:
    """(rows, commits) of the delta table, from Iceberg metadata."""
    table = load_catalog(catalog_cfg).load_table((catalog_cfg.namespace, STREAM))
    snap = table.current_snapshot()
    rows = int(snap.summary["total-records"]) if snap is not None else 0
    return rows, len(table.metadata.snapshots)


def run_inproc(corpus: BinanceCorpus, warehouse: Path | None = None, profiler=None) -> E2EResult:
    with tempfile.TemporaryDirectory(prefix="cryptoflow-bench-") as tmp:
        root = Path(warehouse or tmp)
        settings = _settings(corpus, root)
        ensure_table(
            load_catalog(settings.catalog), settings.catalog.namespace, TABLES[STREAM], settings.parquet
        )
        flow = build_flow(corpus, settings)
        if profiler is not None:
            profiler.start()
        started_at = time.time()
        cpu0 = _cpu_seconds()
        started = time.perf_counter()
        run_main(flow, epoch_interval=EPOCH)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu0
        ended_at = time.time()
        if profiler is not None:
            profiler.stop()
        rows, commits = committed(settings.catalog)
    return E2EResult(
        seconds, len(corpus.frames), rows, corpus.expected_rows, commits, started_at, ended_at, cpu / seconds
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venue", default="binance-spot")
    parser.add_argument("--reps", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    corpus = load_binance(args.venue, args.reps)
    result = run_inproc(corpus)
    print(json.dumps({**asdict(result), "valid": result.valid}))


if __name__ == "__main__":
    main()
