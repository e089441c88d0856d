"""Say so once when the compiled extensions are missing.

Why: `setup.py` builds them as optional, so an install without a C compiler (or a checkout whose `.so`
files were never built, e.g. a fresh git worktree) still runs, on the pure-Python book and parsers, at
several times the CPU per frame (2-10x in docs/benchmarks.md). Nothing else shows it but the numbers.
"""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)
_warned = False

EXTENSIONS = {
    "operators.book._levels": "order-book sides",
    "connectors.binance._depth": "Binance depth decoder",
    "cryptoflow._level_block": "level-block reader",
}


def missing_extensions() -> list[str]:
    """The compiled modules this install lacks (their pure-Python fallbacks run instead)."""
    return [name for name in EXTENSIONS if importlib.util.find_spec(name) is None]


def warn_if_missing() -> list[str]:
    """Log one warning per process naming the missing extensions and how to build them; returns them."""
    global _warned
    missing = missing_extensions()
    if missing and not _warned:
        _warned = True
        log.warning(
            "compiled extensions missing: %s; the pure-Python fallbacks run instead, at several times the "
            "CPU per frame. Build them with a C compiler: pip install -e . (or make)",
            ", ".join(f"{name} ({EXTENSIONS[name]})" for name in missing),
        )
    return missing
