"""Blocking HTTP GET over a real socket, bound to the shard's egress address, with typed outcomes.

Connectors call it through `asyncio.to_thread` so the WebSocket loop keeps reading meanwhile.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def retry_after_s(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class HttpError(Exception):
    def __init__(self, response: HttpResponse, url: str) -> None:
        super().__init__(f"HTTP {response.status} from {url}: {response.body[:200]!r}")
        self.response = response


def http_get(url: str, timeout_s: float, local_addr: str | None = None) -> HttpResponse:
    parts = urlsplit(url)
    source = (local_addr, 0) if local_addr else None
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout_s, source_address=source)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path or "/", headers={"Accept": "application/json", "User-Agent": "cryptoflow"})
        resp = conn.getresponse()
        body = resp.read()
        response = HttpResponse(resp.status, body, {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()
    if response.status != 200:
        raise HttpError(response, url)
    return response
