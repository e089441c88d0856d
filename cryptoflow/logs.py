"""One logging setup for every entry point: `CRYPTOFLOW_LOG_LEVEL` (default INFO), one line per record."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("CRYPTOFLOW_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    if getattr(root, "_cryptoflow_configured", False):
        root.setLevel(level)
        return
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root._cryptoflow_configured = True  # type: ignore[attr-defined]
    # websockets logs every connection and HTTP response at INFO: too chatty for a collector.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
