"""Ports for servers that tests start as subprocesses (weed mini, moto_server, Bytewax peers).

Chosen below Linux's ephemeral range (32768+): a port handed out by `bind(0)` is one that outgoing
connections also take, so another socket could grab it between the check here and the subprocess
binding it (seen once: "Port allocation failed" from weed mini while another suite ran)."""

from __future__ import annotations

import random
import socket


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports that bind right now."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    while len(ports) < n:
        port = random.randrange(20_000, 32_000)
        if port in ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        socks.append(s)
        ports.append(port)
    for s in socks:
        s.close()
    return ports
