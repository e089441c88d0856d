"""A `moto_server` process (from `moto[server]`) on 127.0.0.1: DynamoDB for the commit ledger tests."""

from __future__ import annotations

import subprocess
import sysconfig
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_ports


def _free_port() -> int:
    return free_ports(1)[0]


@contextmanager
def moto_server(log_dir: Path, timeout_s: float = 30.0):
    binary = Path(sysconfig.get_path("scripts")) / "moto_server"
    port = _free_port()
    log = (log_dir / "moto.log").open("w")
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {(log_dir / 'moto.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
