"""What every dataflow process does before Bytewax builds the flow: logging, config, endpoints, a clean
SIGTERM, the GIL switch interval (`runtime.switch_interval_ms`) and a safely created recovery store.

`python -m bytewax.run dataflows.X -r DIR -s N -b M` needs DIR to hold initialised recovery partitions;
`python -m bytewax.recovery DIR N` panics when they already exist. The dataflow process creates them on
first use (under a file lock, so processes of one cluster do not race) and leaves existing ones alone.
SIGTERM (what Kubernetes sends) would kill Bytewax without any cleanup; it is turned into the same
clean abort as Ctrl-C. Neither takes a final snapshot: the next run resumes from the last one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
from pathlib import Path

from cryptoflow import allocator, native
from cryptoflow.config import Settings, load_settings_or_exit
from cryptoflow.logs import setup_logging
from cryptoflow.observability import HEALTH, serve

log = logging.getLogger(__name__)

_served = False


def process_settings() -> Settings:
    """Load config (exit with one clear line if bad), set the GIL switch interval, warn once if the compiled
    extensions are missing, start /metrics, /live, /ready once, install the SIGTERM handler and create
    the recovery store named by `-r` if needed."""
    global _served
    setup_logging()
    allocator.configure()  # before Bytewax and the clients start threads (each could get an arena)
    settings = load_settings_or_exit()
    sys.setswitchinterval(settings.runtime.switch_interval_ms / 1000)
    native.warn_if_missing()  # once per process
    if settings.metrics.port is not None and not _served:
        HEALTH.max_commit_age_s = settings.metrics.ready_max_commit_age_s
        serve(settings.metrics.port)
        _served = True
    prepare_process(settings.recovery.partitions)
    return settings


def recovery_dir_from_argv(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg in ("-r", "--recovery-directory") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--recovery-directory="):
            return arg.split("=", 1)[1]
    return environ.get("BYTEWAX_RECOVERY_DIRECTORY")


def ensure_recovery_store(directory: str | Path, partitions: int) -> bool:
    """Create `partitions` recovery partitions in `directory` unless some exist; True if created."""
    from bytewax.recovery import init_db_dir

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with (path / ".cryptoflow-init.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if any(path.glob("part-*.sqlite3")):
            return False
        init_db_dir(path, partitions)
        log.info("created Bytewax recovery store %s with %d partition(s)", path, partitions)
        return True


def install_sigterm_handler() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def prepare_process(recovery_partitions: int) -> None:
    install_sigterm_handler()
    directory = recovery_dir_from_argv(sys.argv, os.environ)
    if directory:
        ensure_recovery_store(directory, recovery_partitions)
