"""What every dataflow process does before Bytewax builds the flow: logging, config, endpoints."""

from __future__ import annotations

from cryptoflow.config import Settings, load_settings_or_exit
from cryptoflow.logs import setup_logging
from cryptoflow.observability import HEALTH, serve

_served = False


def process_settings() -> Settings:
    """Load config (exit with one clear line if bad) and start /metrics, /live, /ready once."""
    global _served
    setup_logging()
    settings = load_settings_or_exit()
    if settings.metrics.port is not None and not _served:
        HEALTH.max_commit_age_s = settings.metrics.ready_max_commit_age_s
        serve(settings.metrics.port)
        _served = True
    return settings
