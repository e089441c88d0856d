"""A 2-process Bytewax cluster (`-i 0/1 -a "h:p0;h:p1"`) splits the shards between its processes and
writes the same rows as one process, both equal to the recording's truth."""

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cryptoflow.demo import demo_environment
from cryptoflow.sharding import group_by_shard
from cryptoflow.simulator.server import ExchangeSimulator
from tests.integration.test_binance_spot_end_to_end import read, run_flow
from tests.support.ports import free_ports
from tests.support.recording_truth import binance_spot_expected_level_values

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
CONNECTED = re.compile(r"binance-spot-shard-(\d+)-lane-\d+ connected")


def row_values(rows: list[dict]) -> Counter:
    return Counter(
        (r["exchange_symbol"], r["side"], r["price"], r["qty"], r["seq"], r["is_snapshot"], r["shard"])
        for r in rows
    )


def run_cluster(env: dict[str, str], processes: int = 2) -> list[str]:
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "dataflows.spot_delta", "-i", str(i), "-a", addresses],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(processes)
    ]
    logs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=150)
            assert proc.returncode == 0, out
            logs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return logs


def test_two_process_cluster_splits_shards_and_writes_the_same_rows(binance_spot_venue, tmp_path):
    with ExchangeSimulator(binance_spot_venue) as sim:
        single_env = demo_environment(sim, tmp_path / "single")
        run_flow("spot_delta", single_env)
        single = read(single_env, "spot_delta")
    with ExchangeSimulator(binance_spot_venue) as sim:
        cluster_env = demo_environment(sim, tmp_path / "cluster")
        logs = run_cluster(cluster_env)
        cluster = read(cluster_env, "spot_delta")
    shards_by_process = [{int(m) for m in CONNECTED.findall(log)} for log in logs]
    all_shards = set(group_by_shard("binance", SYMBOLS, 4))
    # every shard was collected by exactly one process, and both processes collected some
    assert all(shards_by_process), shards_by_process
    assert shards_by_process[0].isdisjoint(shards_by_process[1])
    assert shards_by_process[0] | shards_by_process[1] == all_shards
    # the same rows, and both equal to the recording
    assert row_values(cluster) == row_values(single)
    truth = binance_spot_expected_level_values()
    assert (
        Counter((r["exchange_symbol"], r["side"], r["price"], r["qty"], r["is_snapshot"]) for r in cluster)
        == truth
    )
