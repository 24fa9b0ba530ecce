"""Free TCP ports for the servers tests start on loopback.

`free_port` picks at random inside a range, for a server another process binds later (a lab, a
dashboard): the kernel hands out ephemeral ports in order, so tests asking at once would often be
given the same one, where a random pick in a wide range rarely collides. `ephemeral_port` lets the
kernel pick, for a server started at once on an address of its own.
"""

from __future__ import annotations

import random
import socket


def free_port(address: str = "127.0.0.1", low: int = 40001, high: int = 60000) -> int:
    for _ in range(50):
        port = random.randint(low, high)  # noqa: S311 - test ports, not secrets
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port on {address}")


def ephemeral_port(address: str = "127.0.0.1") -> int:
    return ephemeral_ports(1, address)[0]


def ephemeral_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports: each stays bound until all are found, so none is handed out twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((address, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
