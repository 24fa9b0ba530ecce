"""Which network transport each node's ranks used, from NCCL's own log lines (NCCL_DEBUG=INFO).

An all-reduce that fell back from InfiniBand to TCP sockets still finishes, only slower, so the
burn-in would pass while measuring the wrong network. NCCL says which network it chose when a
communicator is created: `INFO(NCCL_INIT, "Using network %s", ...)` in src/init.cc ("IB",
"Socket", or a plugin's name such as "IBext"), and the IB transport lists its devices with
"NET/IB : Using [0]mlx5_0:1/IB ...; OOB ..." (src/transport/net_ib). Every INFO line starts with
"HOST:PID:TID [CUDADEV] NCCL INFO " (src/debug.cc), HOST being the short host name; the rank's
`start` report carries its host and pid, which ties each line to the rank and so to its node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_INFO = re.compile(r"(?:^|\s)(?P<host>[^\s:]+):(?P<pid>\d+):\d+ \[-?\d+\] NCCL INFO (?P<text>.*)$")
_NETWORK = re.compile(r"^Using network (?P<name>\S.*?)\s*$")
_IB_DEVICES = re.compile(r"^NET/IB ?: Using (?P<devices>.*?)(?:; OOB .*)?$")
_DEVICE = re.compile(r"^\[\d+\]\S+$")  # [0]mlx5_0:1/IB; not a trailing flag such as [RO]
SOCKET = "Socket"
GLOO = "gloo"
UNKNOWN = "unknown"


@dataclass
class Transport:
    """What a node's ranks communicated over: NCCL's network(s), or the gloo backend (CPU runs)."""

    backend: str | None = None
    networks: set[str] = field(default_factory=set)
    ib_devices: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        if self.backend == GLOO:
            return GLOO
        if self.networks:
            return ",".join(sorted(self.networks))
        return UNKNOWN

    @property
    def fell_back_to_sockets(self) -> bool:
        return SOCKET in self.networks


def _short(host: str) -> str:
    return host.split(".", 1)[0]


def transports(lines: Iterable[str], records: Iterable[Mapping[str, Any]]) -> dict[str, Transport]:
    """Node → its ranks' transport. Nodes whose ranks ran no process group (one rank in all) are absent."""
    found: dict[str, Transport] = {}
    rank_of: dict[tuple[str, int], str] = {}
    for rec in records:
        if rec.get("event") != "start" or not rec.get("backend"):
            continue
        node = str(rec["node"])
        found.setdefault(node, Transport()).backend = str(rec["backend"])
        if rec.get("host") and isinstance(rec.get("pid"), int):
            rank_of[(_short(str(rec["host"])), rec["pid"])] = node
    for line in lines:
        match = _INFO.search(line)
        if not match:
            continue
        owner = rank_of.get((_short(match["host"]), int(match["pid"])))
        if owner is None:
            continue
        text = match["text"].strip()
        if network := _NETWORK.match(text):
            found[owner].networks.add(network["name"])
        elif devices := _IB_DEVICES.match(text):
            found[owner].ib_devices.update(t for t in devices["devices"].split() if _DEVICE.match(t))
    return found
