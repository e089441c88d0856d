"""Memory probe for long chaos runs, loaded only by flow processes started with this folder on
PYTHONPATH and CFTEST_MEMPROBE=<report file>.

Every CFTEST_MEMPROBE_EVERY_S seconds it appends one JSON line: RSS, tracemalloc current/peak, the
number of live pymalloc blocks, glibc mallinfo2 (arena = heap obtained with brk, hblkhd = mmapped,
uordblks = in use, fordblks = free inside the heap), the gc object counts by type that changed most
since the first sample, and the allocation sites (tracebacks) that grew most since the first sample.
`live_blocks` is counted right after a full `gc.collect()` (cyclic garbage, e.g. the closures and
frames of a failed connect, otherwise waits for a rare gen-2 collection and looks like growth).
RSS growing while the Python heap and `uordblks` stay flat is allocator high-water, not a leak.
`rss_by_region_mb` splits RSS by mapping (smaps): `heap` (glibc main arena), `mimalloc` (anonymous
mappings below 0x100000000000: Arrow's default memory pool reserves there), `anon` (pymalloc arenas,
glibc thread arenas, Rust/jemalloc), `file` (code). CFTEST_MEMPROBE_FRAMES=0 (the default) skips
tracemalloc, whose snapshots are too slow for a loaded 2-core box and whose tables double RSS.

Both processes of a flow are probed, each line saying which (`process`: "flow" or "sink_child", and
`pid`). The flow process forks its sink child only while it has no other thread
(`connectors.iceberg.remote._can_fork`), as in production; a probe thread started at import would make
it spawn a fresh interpreter instead, a different child from the one users run. So the flow's probe
starts right after the flow's first fork (the sink child's), and the forked child starts its own
(`cryptoflow_sink_child`, the hook the fork calls). A child spawned anyway (CRYPTOFLOW_SINK_CHILD_START
=spawn) imports this file and starts at once. A flow that forks nothing (`sink.executor: thread`) needs
CFTEST_MEMPROBE_START=import: its probe then starts when this file is imported, as before.
"""

import ctypes
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo() -> dict:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        info = libc.mallinfo2()
        return {name: getattr(info, name) // 1024 for name, _ in _Mallinfo2._fields_}
    except (OSError, AttributeError):
        return {}


def _arrow() -> dict:
    """Arrow's default pool: bytes held by live buffers now and at most (the rest of its region is
    free pages the pool keeps)."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is None:
        return {}
    pool = pyarrow.default_memory_pool()
    return {"allocated": pool.bytes_allocated() // 1024, "max": pool.max_memory() // 1024}


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _regions() -> dict:
    """RSS in MB per kind of mapping (see the module docstring)."""
    out: Counter = Counter()
    group = "anon"
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split(None, 6)
            if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
                name = head[5].strip() if len(head) > 5 else ""
                start = int(head[0].split("-")[0], 16)
                if name == "[heap]":
                    group = "heap"
                elif name.startswith("/"):
                    group = "file"
                elif name:
                    group = "other"
                else:
                    group = "mimalloc" if start < 0x100000000000 else "anon"
            elif line.startswith("Rss:"):
                out[group] += int(head[1])
    return {k: v // 1024 for k, v in sorted(out.items())}


def _types() -> Counter:
    """Live objects by type name. gc.get_objects() also returns objects other threads are still
    building, e.g. the tuple `tuple(generator)` fills while its generator reads a file with the GIL
    released; if that thread resized it while our list holds a second reference, CPython raises
    `SystemError: Objects/tupleobject.c: bad argument to internal function` in the flow (seen in a
    chaos run, in pyiceberg's manifest reading). So no other thread may run while the list exists: a
    huge switch interval keeps the GIL here until the list is gone (nothing below blocks)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        objects = gc.get_objects()
        try:
            return Counter(type(o).__name__ for o in objects)
        finally:
            del objects
    finally:
        sys.setswitchinterval(before)


def _run(path: str, every: float, frames: int, process: str) -> None:
    if frames:
        tracemalloc.start(frames)
    time.sleep(every)
    base = tracemalloc.take_snapshot() if frames else None
    base_types, start = _types(), time.monotonic()
    while True:
        time.sleep(every)
        top = tracemalloc.take_snapshot().compare_to(base, "traceback")[:12] if base else []
        blocks = sys.getallocatedblocks()
        types = _types()  # before collecting: cyclic garbage waiting for the gc shows here
        gc.collect()  # ~40k tracked objects: a few ms; what is left is what the flow really holds
        live_blocks = sys.getallocatedblocks()
        grown = (types - base_types).most_common(12)
        current, peak = tracemalloc.get_traced_memory()
        line = {
            "process": process,
            "pid": os.getpid(),
            "t": round(time.monotonic() - start + every, 1),
            "rss_kb": _rss_kb(),
            "rss_by_region_mb": _regions(),
            "traced_kb": current // 1024,
            "traced_peak_kb": peak // 1024,
            "blocks": blocks,
            "live_blocks": live_blocks,
            "mallinfo_kb": _mallinfo(),
            "arrow_kb": _arrow(),
            "gc_objects": sum(types.values()),
            "types_grown": grown,
            "sites_grown": [
                {
                    "kb": s.size_diff // 1024,
                    "count": s.count_diff,
                    "tb": [f"{f.filename}:{f.lineno}" for f in s.traceback][-frames:],
                }
                for s in top
            ],
        }
        with open(path, "a") as out:
            out.write(json.dumps(line) + "\n")


IN_SINK_CHILD = bool(os.environ.get("CRYPTOFLOW_SINK_CHILD"))
_started = False


def _start(process: str) -> None:
    """The probe thread of this process, once (`t` counts from here)."""
    global _started
    path = os.environ.get("CFTEST_MEMPROBE")
    if not path or _started:
        return
    _started = True
    every = float(os.environ.get("CFTEST_MEMPROBE_EVERY_S", "30"))
    frames = int(os.environ.get("CFTEST_MEMPROBE_FRAMES", "0"))
    threading.Thread(target=_run, args=(path, every, frames, process), name="memprobe", daemon=True).start()


def cryptoflow_sink_child() -> None:
    """Called by connectors.iceberg.remote in the sink child it has just forked: probe the child too."""
    global _started
    _started = False  # the flag came with the fork from the parent; this process has no probe thread yet
    _start("sink_child")


def _install() -> None:
    if IN_SINK_CHILD:  # spawned: a fresh interpreter that imported this file
        _start("sink_child")
    elif os.environ.get("CFTEST_MEMPROBE_START") == "import":  # a flow with no sink child to fork
        _start("flow")
    else:  # the flow process: after its first fork (the sink child), so that it can fork at all
        os.register_at_fork(after_in_parent=lambda: _start("flow"))


_install()
