"""A forced disconnect under `python -m bytewax.run dataflows.spot_delta`: the frames the shard missed
show up as one row in the Iceberg `gaps` table spanning exactly the break, and the book resyncs from a
snapshot that equals the recording's truth at its id."""

import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from cryptoflow.demo import demo_environment
from cryptoflow.simulator.faults import FaultPlan
from cryptoflow.simulator.server import ExchangeSimulator
from tests.integration.test_binance_spot_end_to_end import read
from tests.support.recording_truth import BINANCE_WS, binance_true_book

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
POOL = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
NKN_PATH = "/stream?streams=nknusdt@depth@100ms"


def recorded_nkn_diffs() -> list[dict]:
    out = []
    for line in BINANCE_WS.read_text().splitlines()[1:]:
        if line:
            data = json.loads(line.partition(": ")[2])["data"]
            if data.get("e") == "depthUpdate" and data["s"] == "NKNUSDT":
                out.append(data)
    return out


def test_a_forced_disconnect_lands_one_gap_row_and_a_true_resync(binance_spot_venue, tmp_path):
    skip = 5
    plan = FaultPlan(skip_on_disconnect=skip)
    with ExchangeSimulator(binance_spot_venue, speed=3, continuous=True, faults=plan) as sim:
        env = {
            **demo_environment(sim, tmp_path / "warehouse"),
            "CRYPTOFLOW_SHARDING__EGRESS_POOL": "[" + ", ".join(POOL) + "]",
            "CRYPTOFLOW_EXCHANGES__BINANCE__SPOT__SNAPSHOT_LIMIT": "5000",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "dataflows.spot_delta"],
            cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while sim.position(NKN_PATH) < 60 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            assert sim.position(NKN_PATH) >= 60, "the NKNUSDT stream never got going"
            (nkn_ip,) = [ip for ip, paths in sim.stats.streams_by_ip.items() if NKN_PATH in paths]
            sim.drop_connections(nkn_ip, code=1011, reason="injected disconnect")
            out, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, out
        skipped = [json.loads(text)["data"] for path, text in sim.stats.skipped if path == NKN_PATH]
    assert len(skipped) == skip
    assert sim.stats.connections_by_ip[nkn_ip] == 2  # it came back from its own address

    recorded = recorded_nkn_diffs()
    first = next(i for i, d in enumerate(recorded) if d["U"] == skipped[0]["U"])
    assert [d["u"] for d in recorded[first : first + skip]] == [d["u"] for d in skipped]
    last_good, breaking = recorded[first - 1], recorded[first + skip]

    gaps = read(env, "gaps")
    assert [(g["exchange_symbol"], g["reason"], g["seq_from"], g["seq_to"]) for g in gaps] == [
        ("NKNUSDT", "sequence", last_good["u"], breaking["u"])
    ]
    rows = [r for r in read(env, "spot_delta") if r["exchange_symbol"] == "NKNUSDT"]
    snapshot_ids = sorted({r["seq"] for r in rows if r["is_snapshot"]})
    assert len(snapshot_ids) == 2  # the first book, and the resync after the gap
    resync = snapshot_ids[1]
    assert resync >= breaking["u"] - 1
    levels = [r for r in rows if r["is_snapshot"] and r["seq"] == resync]
    bids = {r["price"]: r["qty"] for r in levels if r["side"] == "bid"}
    asks = {r["price"]: r["qty"] for r in levels if r["side"] == "ask"}
    truth_bids, truth_asks = binance_true_book("NKNUSDT", resync)
    assert (bids, asks) == (truth_bids, truth_asks)
    assert all(isinstance(p, Decimal) for p in bids)
    # every diff after the resync chains without a hole up to the end of the recording
    after = sorted({(r["first_seq"], r["seq"]) for r in rows if not r["is_snapshot"] and r["seq"] > resync})
    assert after and after[0][0] <= resync + 1 <= after[0][1]
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(after))
    assert after[-1][1] == recorded[-1]["u"]
    assert Counter(g["exchange_symbol"] for g in gaps) == Counter({"NKNUSDT": 1})
