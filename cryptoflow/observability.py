"""Per-process HTTP endpoints: `/metrics` (Prometheus), `/live` (process up) and `/ready` (at least one
exchange connection open and, once anything was committed, a commit within `ready_max_commit_age_s`).

Components report into `HEALTH`; the server only reads it. Started by each dataflow module when
`metrics.port` is set (each process of a cluster needs its own port or pod).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


@dataclass
class Health:
    max_commit_age_s: float = 300.0
    _connections: dict[str, bool] = field(default_factory=dict)
    _last_commit: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def connection(self, name: str, up: bool) -> None:
        with self._lock:
            self._connections[name] = up

    def committed(self) -> None:
        self._last_commit = time.monotonic()

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            connected = sum(self._connections.values())
        if connected == 0:
            return False, "no exchange connection is open"
        if self._last_commit is not None and time.monotonic() - self._last_commit > self.max_commit_age_s:
            return False, f"no commit for more than {self.max_commit_age_s:.0f} s"
        return True, f"{connected} exchange connection(s) open"


HEALTH = Health()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/metrics":
            # `?name[]=a_bucket&name[]=b_count` (as prometheus_client's own handler): only those samples;
            # a full page takes the GIL for milliseconds, which a frequent scraper adds to the flow's latency
            names = parse_qs(query).get("name[]")
            registry = REGISTRY.restricted_registry(names) if names else REGISTRY
            self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
        elif path == "/live":
            self._send(200, b"ok\n")
        elif path == "/ready":
            ok, why = HEALTH.ready()
            self._send(200 if ok else 503, (why + "\n").encode())
        else:
            self._send(404, b"not found\n")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: stay quiet
        return


def serve(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start the endpoints in a daemon thread; port 0 picks a free port (see `server_address`)."""
    server = ThreadingHTTPServer((host, port), _Handler)
    threading.Thread(target=server.serve_forever, name="observability", daemon=True).start()
    log.info("metrics, /live and /ready on %s:%s", host, server.server_address[1])
    return server
