"""Crash harness: run a flow over a captured journal, SIGKILL it again and again, resume every time.

Faults are injected by `tests/support/faults/sitecustomize.py` (loaded through PYTHONPATH by the flow
processes started here only); each fault prints a marker before the process kills itself, so the
harness knows which faults really fired rather than assuming it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from connectors.iceberg.catalog import load_catalog
from connectors.iceberg.maintenance import WRITER_PREFIX
from cryptoflow.capture import run_capture
from cryptoflow.config import load_settings

REPO = Path(__file__).resolve().parents[2]
FAULTS = Path(__file__).resolve().parent / "faults"
MARKER = "CRYPTOFLOW-FAULT-FIRED"
AHEAD = "table is ahead of the recovery state"


def capture(env: dict[str, str], out: Path) -> None:
    """Record the simulator's replay (both channels) into journal segments, as `cryptoflow capture`."""
    settings = load_settings(environ={**os.environ, **env})
    assert run_capture(settings, out, {"depth", "trades"}) == 0


def replay_env(base: dict[str, str], capture_dir: Path, batch_size: int = 1) -> dict[str, str]:
    return {
        **base,
        "CRYPTOFLOW_JOURNAL__ENABLED": "true",
        "CRYPTOFLOW_JOURNAL__REPLAY_DIR": str(capture_dir),
        "CRYPTOFLOW_CONNECTOR__BATCH_SIZE": str(batch_size),
        "CRYPTOFLOW_SINK__RETRY_INITIAL_S": "0.05",
    }


def sql_env(warehouse: Path) -> dict[str, str]:
    return {
        "CRYPTOFLOW_CATALOG__TYPE": "sql",
        "CRYPTOFLOW_CATALOG__URI": f"sqlite:///{warehouse / 'catalog.db'}",
        "CRYPTOFLOW_CATALOG__WAREHOUSE": str(warehouse),
    }


def flow_cmd(flow: str, recovery: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "bytewax.run", f"dataflows.{flow}"]
    if recovery is not None:
        cmd += ["-r", str(recovery), "-s", "1", "-b", "0"]
    return cmd


def run_once(flow: str, env: dict[str, str], recovery: Path | None, fault: str = "", pace_s: float = 0.0):
    full = {
        **os.environ,
        **env,
        "PYTHONPATH": f"{FAULTS}{os.pathsep}{REPO}",
        "CFTEST_FAULT": fault,
        "CFTEST_FAULT_PACE_S": str(pace_s),
    }
    return subprocess.run(
        flow_cmd(flow, recovery), cwd=REPO, env=full, capture_output=True, text=True, timeout=120
    )


@dataclass
class CrashReport:
    fired: list[str] = field(default_factory=list)
    not_fired: list[str] = field(default_factory=list)
    runs: int = 0
    ahead_resumes: int = 0  # resumes that found the table ahead of Bytewax's state (and deduplicated)
    staged_resumes: int = 0  # resumes that committed a staged epoch the table did not have
    landed_resumes: int = 0  # resumes whose state's staged epoch had landed already (not committed again)
    logs: list[str] = field(default_factory=list)


def random_schedule(seed: int, kills: int) -> list[str]:
    """A fault list that cycles through the kinds and adds random-time kills."""
    rng = random.Random(seed)
    kinds = []
    for i in range(kills):
        kind = i % 5
        if kind == 4:
            kinds.append("staged:1")
        elif kind == 0:
            kinds.append(f"read:{rng.randint(2, 25)}")
        elif kind == 1:
            kinds.append("parquet:1")
        elif kind == 2:
            kinds.append("after_commit:1")
        else:
            kinds.append(f"random:{rng.uniform(0.3, 2.0):.2f}")
    return kinds


def run_with_crashes(
    flow: str, env: dict[str, str], recovery: Path, schedule: list[str], pace_s: float
) -> CrashReport:
    """Run the flow once per scheduled fault (each killed run resumes the last), then once clean."""
    report = CrashReport()
    for fault in [*schedule, ""]:
        result = run_once(flow, env, recovery, fault, pace_s)
        report.runs += 1
        report.logs.append(f"--- fault={fault!r} rc={result.returncode}\n{result.stderr[-4000:]}")
        report.ahead_resumes += result.stderr.count(AHEAD)
        report.staged_resumes += sum("committed staged seq" in line for line in result.stderr.splitlines())
        report.landed_resumes += result.stderr.count("is in the table already; not committing again")
        fired = [line for line in result.stderr.splitlines() if line.startswith(MARKER)]
        if fired:
            assert result.returncode == -9, report.logs[-1]
            report.fired.append(fired[0][len(MARKER) + 1 :])
        else:
            assert result.returncode == 0, report.logs[-1]
            if fault:
                report.not_fired.append(fault)
    return report


def table_rows(env: dict[str, str], table: str) -> list[dict]:
    settings = load_settings(environ={**os.environ, **env})
    cat = load_catalog(settings.catalog)
    return cat.load_table((settings.catalog.namespace, table)).scan().to_arrow().to_pylist()


def commits_and_snapshots(env: dict[str, str], table: str) -> tuple[int, int]:
    """(commits the table's writers made, per their watermark properties; snapshots still kept)."""
    settings = load_settings(environ={**os.environ, **env})
    loaded = load_catalog(settings.catalog).load_table((settings.catalog.namespace, table))
    props = loaded.metadata.properties
    commits = sum(json.loads(v)["seq"] for k, v in props.items() if k.startswith(WRITER_PREFIX))
    return commits, len(loaded.snapshots())


def as_multiset(rows: list[dict]) -> Counter:
    return Counter(tuple(sorted(r.items())) for r in rows)
