"""Our end-to-end path as deployed: `python -m bytewax.run dataflows.spot_delta -w 1` (unchanged) against
the exchange simulator at speed 0 over loopback WebSocket + HTTP, into a temporary SqlCatalog warehouse.

The simulator (in this process, its own thread and core) serves the corpus's frames and the recorded
REST snapshots; the client fetches the snapshots itself when its sequencer asks for them. A process
start (interpreter, imports, catalog, connect) costs about as much as the whole replay at this corpus
size, so the rate is differential: two runs of different corpus sizes, rate = extra frames / extra
seconds. The raw wall times are reported as well.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.corpus import BinanceCorpus, binance_instruments_json
from benchmarks.ours_inproc import committed
from cryptoflow.config import load_settings
from cryptoflow.paths import REPO_ROOT
from cryptoflow.simulator.binance_spot import BinanceSpotVenue, RecordedFrame
from cryptoflow.simulator.server import ExchangeSimulator


@dataclass
class SimRun:
    wall_seconds: float
    frames: int
    rows_committed: int
    rows_expected: int
    exit_code: int

    @property
    def valid(self) -> bool:
        return self.exit_code == 0 and self.rows_committed == self.rows_expected


def _venue(corpus: BinanceCorpus) -> BinanceSpotVenue:
    frames = [RecordedFrame(float(i), orjson.loads(f)["stream"], f) for i, f in enumerate(corpus.frames)]
    snapshots = {s: snap.body.encode() for s, snap in corpus.snapshots.items()}
    return BinanceSpotVenue(frames, snapshots, binance_instruments_json(corpus))


def run_simulated(corpus: BinanceCorpus) -> SimRun:
    if corpus.market != "spot":
        raise ValueError("dataflows.spot_delta reads Binance spot only")
    with (
        tempfile.TemporaryDirectory(prefix="cryptoflow-bench-sim-") as tmp,
        ExchangeSimulator(_venue(corpus), speed=0.0) as sim,
    ):
        root = Path(tmp)
        env = {
            "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__SYMBOLS": "[" + ", ".join(corpus.symbols) + "]",
            "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__WS_URL": sim.ws_url,
            "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__REST_URL": sim.http_url,
            "CRYPTOFLOW_CONNECTOR__STOP_AT_REPLAY_END": "true",
            "CRYPTOFLOW_CATALOG__TYPE": "sql",
            "CRYPTOFLOW_CATALOG__URI": f"sqlite:///{root / 'catalog.db'}",
            "CRYPTOFLOW_CATALOG__WAREHOUSE": str(root),
            "CRYPTOFLOW_LOG_LEVEL": "WARNING",
        }
        cmd = [sys.executable, "-m", "bytewax.run", "dataflows.spot_delta", "-w", "1"]
        log = root / "flow.log"
        started = time.perf_counter()
        with log.open("w") as out:
            code = subprocess.call(cmd, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=out, stderr=out)
        wall = time.perf_counter() - started
        if code != 0:
            sys.stderr.write(log.read_text()[-3000:])
        rows = committed(load_settings(environ=env).catalog)[0] if code == 0 else 0
    return SimRun(wall, len(corpus.frames), rows, corpus.expected_rows, code)
