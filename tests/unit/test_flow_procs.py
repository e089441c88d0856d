"""`cryptoflow.flow_procs`: a flow forked from the fork server behaves like `python -m bytewax.run`: its
own environment, its output in its own log, its exit status."""

from __future__ import annotations

import os

from cryptoflow.flow_procs import start_bytewax

MODULE = "tests.support.env_echo_flow"


def test_forked_flow_gets_its_env_and_log_and_reports_success(tmp_path):
    runs = {
        name: start_bytewax(MODULE, ["-w", "1"], {"CFTEST_GREETING": name}, tmp_path / f"{name}.log")
        for name in ("hello", "bonjour")
    }
    assert all(run.wait(60) == 0 for run in runs.values())
    for name in runs:
        lines = (tmp_path / f"{name}.log").read_text().splitlines()
        assert [line for line in lines if not line.startswith("env_echo.seen")] == [
            f"{name} {i}" for i in (1, 2, 3)
        ]
    assert "CFTEST_GREETING" not in os.environ  # the parent's environment is untouched


def test_a_failing_flow_exits_non_zero_with_the_error_in_its_log(tmp_path):
    log = tmp_path / "fail.log"
    run = start_bytewax(MODULE, ["-w", "1"], {"CFTEST_GREETING": "x", "CFTEST_FAIL": "1"}, log)
    assert run.wait(60) not in (0, None)
    assert run.poll() == run.returncode != 0
    assert "asked to fail" in log.read_text()
