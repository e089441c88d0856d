"""An HTTP proxy on 127.0.0.1 that injects faults between a client and a real server.

Requests are forwarded unchanged (Host header included, so SigV4 signatures stay valid). A rule sees
each request and may answer with an error status *before* forwarding (the server never saw it), an
error *after* forwarding (the server did the work, the client hears a failure: the unknown-outcome
case), or stall for a while (timeouts). Every decision is recorded for the test to assert on.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Fault:
    status: int = 0  # 0: no status injected
    when: str = "before"  # before | after forwarding
    delay_s: float = 0.0  # stall before doing anything
    drop: bool = False  # close the connection without any response (what a client timeout looks like)


Rule = Callable[[str, str], Fault | None]  # (method, path) -> fault or None


@dataclass
class FaultProxy:
    target_port: int
    rule: Rule | None = None
    injected: list[tuple[str, str, Fault]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                fault = proxy.rule(self.command, self.path) if proxy.rule else None
                if fault is not None:
                    proxy.injected.append((self.command, self.path, fault))
                    if fault.delay_s:
                        time.sleep(fault.delay_s)
                    if fault.when == "before" and (fault.status or fault.drop):
                        return self._error(fault)
                status, headers, data = proxy._forward(self.command, self.path, dict(self.headers), body)
                if fault is not None and fault.when == "after" and (fault.status or fault.drop):
                    return self._error(fault)
                self.send_response(status)
                head = self.command == "HEAD"
                for name, value in headers:
                    skip = ("transfer-encoding", "connection") + (() if head else ("content-length",))
                    if name.lower() not in skip:
                        self.send_header(name, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def _error(self, fault: Fault) -> None:
                if fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status = fault.status
                data = json.dumps(
                    {"error": {"message": "injected by FaultProxy", "type": "InjectedFault", "code": status}}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes):
        conn = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=60)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() != "transfer-encoding"}
            if body or method in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read() if method != "HEAD" else b""
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def first_n(n: int, match: Callable[[str, str], bool], fault: Fault) -> Rule:
    """Inject `fault` into the first `n` requests that `match`."""
    seen = [0]
    lock = threading.Lock()

    def rule(method: str, path: str) -> Fault | None:
        if not match(method, path):
            return None
        with lock:
            seen[0] += 1
            return fault if seen[0] <= n else None

    return rule
