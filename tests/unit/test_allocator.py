"""`cryptoflow.allocator`: after a burst's buffers are freed, `release()` gives their pages back to the
OS (issue #6: RSS stepped up after every 10x burst and never came down while the Python heap was
flat). Each case runs in a fresh interpreter so its RSS is not shared with other tests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cryptoflow import allocator

REPO = Path(__file__).resolve().parents[2]

PRELUDE = """
import gc, json
from cryptoflow import allocator

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

"""

pytestmark = pytest.mark.skipif(allocator._glibc() is None, reason="needs glibc (malloc_trim)")


def run(body: str) -> dict:
    code = PRELUDE + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_release_returns_glibc_heap_pages_pinned_below_a_live_block():
    # 150 MB of 2 KB blocks (glibc malloc, not pymalloc), freed except one late block that pins the
    # heap top: without malloc_trim glibc keeps every freed page resident
    r = run("""
        base = rss_mb()
        blocks = [bytes(2048) for _ in range(75_000)]
        pin = bytes(2048)
        del blocks
        gc.collect()
        held = rss_mb()
        allocator.release()
        print(json.dumps({"base": base, "held": held, "after": rss_mb()}))
    """)
    burst = r["held"] - r["base"]
    assert burst > 100, r  # the freed burst really stayed resident
    assert r["held"] - r["after"] > 0.5 * burst, r  # measured ~63%: 2 KB blocks leave partly used pages


def test_release_returns_arrow_pool_pages_after_a_commit_sized_batch():
    # what the sink does per epoch: build Arrow columns from a burst of rows, then drop them
    r = run("""
        import pyarrow as pa
        allocator.configure()
        base = rss_mb()
        tables = [pa.table({"price": pa.array(range(i, i + 20_000), pa.float64()),
                            "sym": pa.array([f"S{j % 97}" for j in range(20_000)])}) for i in range(300)]
        table = pa.concat_tables(tables).combine_chunks().sort_by("price")
        del tables, table
        gc.collect()
        held = rss_mb()
        allocated = pa.default_memory_pool().bytes_allocated()
        allocator.release()
        print(json.dumps({"base": base, "held": held, "after": rss_mb(), "allocated": allocated}))
    """)
    assert r["allocated"] == 0, r  # nothing of the batch is alive: what stays resident is free pages
    assert r["held"] - r["base"] > 20, r  # and the freed batch really stayed resident
    burst = r["held"] - r["base"]
    assert r["held"] - r["after"] > 0.5 * burst, r


def test_configure_caps_arenas_and_reads_malloc_arena_max():
    assert allocator.configure({"MALLOC_ARENA_MAX": "4"}) is True
    assert allocator.configure({"MALLOC_ARENA_MAX": "many"}) is True  # bad value: logged, default used
    assert allocator.configure({}) is True


def test_configure_routes_arrow_through_malloc_unless_the_operator_chose_a_pool():
    chosen = run("""
        import os
        os.environ.pop("ARROW_DEFAULT_MEMORY_POOL", None)
        import pyarrow as pa
        before = pa.default_memory_pool().backend_name
        allocator.configure()
        print(json.dumps({"before": before, "after": pa.default_memory_pool().backend_name}))
    """)
    assert chosen["after"] == "system", chosen
    kept = run("""
        import os
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "mimalloc"
        import pyarrow as pa
        allocator.configure()
        print(json.dumps({"after": pa.default_memory_pool().backend_name}))
    """)
    assert kept["after"] == "mimalloc", kept


def test_importing_cryptoflow_first_puts_arrow_internals_on_malloc_too():
    # `set_memory_pool` alone leaves C++ internals (the Parquet writer: ~30 MB here) on mimalloc
    r = run("""
        import io
        import pyarrow as pa, pyarrow.parquet as pq
        t = pa.table({"a": pa.array(range(500_000)), "s": pa.array([f"x{i % 1000}" for i in range(500_000)])})
        pq.write_table(t.sort_by("s"), io.BytesIO(), compression="zstd")
        print(json.dumps({"mimalloc": pa.mimalloc_memory_pool().max_memory(), "system": pa.system_memory_pool().max_memory()}))
    """)
    assert r["mimalloc"] == 0 and r["system"] > 0, r
