"""EC2 instance metadata (IMDSv2) discovery of the private IPs on the instance's network interfaces.

Each private IP maps to its own Elastic IP, so every one of them is a separate egress identity for the
exchanges' per-IP limits. IMDSv2 needs a session token (PUT) sent with every GET.
"""

from __future__ import annotations

import ipaddress
import logging
import urllib.request

log = logging.getLogger(__name__)

TOKEN_PATH = "/latest/api/token"
MACS_PATH = "/latest/meta-data/network/interfaces/macs/"
TOKEN_TTL_S = 300


def _request(url: str, timeout_s: float, method: str = "GET", headers: dict[str, str] | None = None) -> str:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return resp.read().decode()


def discover_imds_ips(base_url: str = "http://169.254.169.254", timeout_s: float = 2.0) -> list[str]:
    """All IPv4 addresses of all ENIs (primary first per ENI, then secondaries), deduplicated, in order.

    Raises OSError (urllib's URLError/HTTPError are OSErrors) when the endpoint is unreachable, so a
    caller can decide whether a missing metadata service is fatal.
    """
    base = base_url.rstrip("/")
    token = _request(
        base + TOKEN_PATH,
        timeout_s,
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)},
    ).strip()
    auth = {"X-aws-ec2-metadata-token": token}
    macs = [m.strip().rstrip("/") for m in _request(base + MACS_PATH, timeout_s, headers=auth).split()]
    ips: list[str] = []
    for mac in filter(None, macs):
        text = _request(f"{base}{MACS_PATH}{mac}/local-ipv4s", timeout_s, headers=auth)
        for line in text.split():
            try:
                ip = str(ipaddress.IPv4Address(line.strip()))
            except ValueError:
                log.warning("IMDS: ignoring %r listed for interface %s", line, mac)
                continue
            if ip not in ips:
                ips.append(ip)
    log.info("IMDS: %d private IPs on %d interfaces: %s", len(ips), len(macs), ips)
    return ips
