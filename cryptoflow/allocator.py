"""Hand memory freed after a burst back to the OS, as a long-running service must.

Chaos runs (issue #6) showed RSS stepping up after 10x bursts and never coming down while the Python
heap stayed flat: the memory is free inside the allocators, not leaked. Two allocators keep it:
glibc malloc (the main heap only shrinks from its top; per-thread arenas multiply the high-water) and
Arrow's default pool (mimalloc or jemalloc: pages of the big batches converted for each commit).
`configure()` caps glibc arenas once per process; `release()` runs after each Iceberg commit, when
the epoch's buffers have just been dropped, and returns their pages (`malloc_trim`, Arrow's
`release_unused`). Both are no-ops where the allocator is not there (musl, macOS, no pyarrow).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc mallopt parameter
DEFAULT_ARENA_MAX = 2  # what MALLOC_ARENA_MAX=2 sets; the flow's Python runs under one GIL anyway

_libc: ctypes.CDLL | None = None
_probed = False


def _glibc() -> ctypes.CDLL | None:
    global _libc, _probed
    if not _probed:
        _probed = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt"):
                _libc = libc
        except OSError:
            _libc = None
    return _libc


def configure(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Cap glibc's malloc arenas (MALLOC_ARENA_MAX if set, else 2) before the flow starts threads, and
    route Arrow's allocations through malloc (unless ARROW_DEFAULT_MEMORY_POOL chooses a pool): Arrow's
    mimalloc keeps free pages in per-thread heaps that `release_unused()` from one thread cannot
    return (measured in the chaos run: its region kept climbing), glibc's `malloc_trim` returns all.
    True if the arena cap was applied."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in environ:
        try:
            import pyarrow

            pyarrow.set_memory_pool(pyarrow.system_memory_pool())
        except ImportError:
            pass
    libc = _glibc()
    if libc is None:
        return False
    try:
        arenas = int(environ.get("MALLOC_ARENA_MAX", DEFAULT_ARENA_MAX))
    except ValueError:
        log.warning(
            "MALLOC_ARENA_MAX=%r is not a number; using %d", environ["MALLOC_ARENA_MAX"], DEFAULT_ARENA_MAX
        )
        arenas = DEFAULT_ARENA_MAX
    return bool(libc.mallopt(M_ARENA_MAX, max(1, arenas)))


def release() -> None:
    """Return free allocator pages to the OS: Arrow's pool first (its frees go back to malloc or the
    OS), then glibc's heaps."""
    try:
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
    except ImportError:
        pass
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
