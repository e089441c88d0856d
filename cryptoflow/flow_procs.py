"""Dataflow processes for the demo, started the way `python -m bytewax.run dataflows.X` starts them but
forked from one server process that imported Bytewax, pyiceberg, pyarrow, SQLAlchemy and the project
once: seven fresh interpreters importing them side by side cost ~2.5 CPU-seconds each, which on two cores
was most of the demo's wall time. Each child still is its own process (own Bytewax runtime, config read
from its own environment, own log file), exactly as with separate interpreters.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import sys
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path

from connectors.registry import VENUE_MODULES
from cryptoflow.paths import REPO_ROOT

# Imported (and compiled: PYTHONDONTWRITEBYTECODE leaves no .pyc) once in the fork server; nothing here
# reads the config or starts a thread at import. (`bytewax.run` itself runs fresh in each child.)
PRELOAD = (
    "bytewax.dataflow",
    "dataflows.common",
    *VENUE_MODULES,
    "operators.book_logic",
    "operators.derivatives",
    "operators.positioned",
    "operators.runs",
    "operators.trades",
    "operators.venue_delta",
)

_context: ForkServerContext | None = None


def _forkserver() -> ForkServerContext:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(list(PRELOAD))
    return _context


def _bytewax_main(module: str, args: list[str], env: dict[str, str], log_path: str) -> None:
    """In the child: output to `log_path`, the flow's environment, then `python -m bytewax.run`."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.update(env)
    os.chdir(REPO_ROOT)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    sys.argv = ["bytewax.run", module, *args]
    runpy.run_module("bytewax.run", run_name="__main__", alter_sys=True)


class FlowProcess:
    """The part of `subprocess.Popen` the demo uses (`poll`, `returncode`, `wait`), for a forked flow."""

    def __init__(self, process: BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()


def start_bytewax(module: str, args: list[str], env: dict[str, str], log_path: Path) -> FlowProcess:
    """`python -m bytewax.run <module> <args>` with `env` added to this process' environment, its
    stdout and stderr written to `log_path`."""
    ctx = _forkserver()
    process = ctx.Process(target=_bytewax_main, args=(module, args, env, str(log_path)), name=module)
    process.start()
    return FlowProcess(process)
