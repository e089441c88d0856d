"""Sample our end-to-end run with py-spy (all threads: the Bytewax worker, the feeder/client threads and
pyiceberg's writer pool) and summarize where the Python-visible time goes.

`--gil`: only samples of the thread holding the GIL are kept. One process is GIL-bound (it uses under
one CPU-second per second, see `cpu_per_wall`), so the share of GIL samples is the share of throughput
a function costs. Native work that releases the GIL (Parquet encoding, zstd) is under-counted.

Only samples taken while the flow runs are counted: the main thread under `run_main` (it shows as
callbacks directly below `run_inproc`, run_main itself is native), the feeder threads and the pool
threads. Time inside Bytewax's Rust runtime with no Python frame on the stack is not attributable and
is reported separately as `native_only_samples` (it also includes idle waits), and samples whose
innermost frames are a wait (`Condition.wait`, `Event.wait`, `Thread.start`) as `waiting_samples`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from cryptoflow.paths import REPO_ROOT

WRAPPERS = {
    "Thread._bootstrap", "Thread._bootstrap_inner", "Thread.run", "_run_code", "_run_module_as_main",
    "<module>", "main", "run_inproc", "RecordingFeeder._run", "_worker", "_WorkItem.run",
}  # fmt: skip
# Leaves where a thread waits (queue handoff, thread start); counted apart from work.
WAITS = {"Condition.wait", "Event.wait", "Thread.start"}
SETUP = ("build_flow", "_settings", "ensure_table", "committed", "load_catalog", "TemporaryDirectory")


def _name(frame: str) -> str:
    """`func (path/to/file.py:123)` -> `func (path/to/file.py)`."""
    func, _, where = frame.partition(" (")
    return f"{func} ({where.rsplit(':', 1)[0]})" if where else func


def _in_run(frames: list[str]) -> bool:
    thread = frames[0]
    names = [f.split(" (", 1)[0] for f in frames[1:]]
    if "feeder" in thread or "_WorkItem.run" in names:
        return True
    if "run_inproc" not in names:
        return False
    after = names[names.index("run_inproc") + 1 : names.index("run_inproc") + 2]
    return bool(after) and after[0] not in SETUP


def summarize(raw: str, top: int = 25) -> dict:
    self_time: Counter = Counter()
    inclusive: Counter = Counter()
    by_thread: Counter = Counter()
    total = native = waiting = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        if len(frames) == 1:
            native += n
            continue
        if not _in_run(frames):
            continue
        if any(f.split(" (", 1)[0] in WAITS for f in frames[-3:]):
            waiting += n
            continue
        total += n
        thread = frames[0].split(": ", 1)[1] if ": " in frames[0] else "main"
        by_thread["feeder (client frame path)" if thread.startswith("feeder") else thread] += n
        self_time[_name(frames[-1])] += n
        for name in {_name(f) for f in frames[1:] if f.split(" (", 1)[0] not in WRAPPERS}:
            inclusive[name] += n

    def share(counter: Counter) -> list[dict]:
        return [{"function": k, "share": round(v / total, 4)} for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "native_only_samples": native,
        "waiting_samples": waiting,
        "threads": {k: round(v / total, 4) for k, v in by_thread.most_common()} if total else {},
        "self": share(self_time) if total else [],
        "inclusive": share(inclusive) if total else [],
    }


def profile_e2e(venue: str, reps: int, rate: int = 250) -> dict | None:
    """Run `benchmarks.ours_inproc` under `py-spy record`; None when py-spy is missing or not allowed."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        return None
    with tempfile.TemporaryDirectory(prefix="cryptoflow-bench-prof-") as tmp:
        out = Path(tmp) / "profile.txt"
        cmd = [
            pyspy, "record", "--format", "raw", "--threads", "--gil", "--rate", str(rate), "-o", str(out), "--",
            sys.executable, "-m", "benchmarks.ours_inproc", "--venue", venue, "--reps", str(reps),
        ]  # fmt: skip
        done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            sys.stderr.write(f"py-spy failed ({done.returncode}): {done.stderr[-500:]}\n")
            return None
        result = summarize(out.read_text())
    result.update({"venue": venue, "reps": reps, "tool": "py-spy record --threads --gil", "rate_hz": rate})
    return result
