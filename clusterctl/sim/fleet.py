"""The lab process: the fleet of simulated servers, its sockets, TLS, and serving them with uvicorn.

`SimulatedFleet` is the in-memory model (also used directly by tests); `main` is the process
entry (`python -m clusterctl.sim`): one listening socket per BMC address
(node i -> the i-th host address after --base-address, port --port), plus a
control socket on 127.0.0.1, all served by one uvicorn server with the lab cert.
The same event loop serves every node over SSH (clusterctl.sim.ssh: node i on the i-th host
address after --ssh-base-address, port --ssh-port; --ssh-port 0 turns SSH off).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import resource
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from clusterctl.sim import labdir
from clusterctl.sim.bmc import BMC
from clusterctl.sim.clock import SimClock
from clusterctl.sim.errors import FaultError
from clusterctl.sim.faults import Fault, load_fault_file
from clusterctl.sim.inventory import LAB_OS
from clusterctl.sim.node import NodeHardware

DEFAULT_BASE = "127.1.0.0"
DEFAULT_PORT = 8443
MAX_NODES = 20_000  # 127.1.0.0/16 holds them; the file-descriptor limit decides how many one process serves
FLAT_NAMES = 9999  # gpu0001..gpu9999; a larger lab is named per hall, as sites number their nodes
HALL_NODES = 6250  # h1-gpu0001..h1-gpu6250, h2-gpu0001..: 12,500 nodes are two halls
NODES_PER_RACK = 8


def node_name(i: int) -> str:
    """The default name of lab node i in a lab of at most FLAT_NAMES nodes."""
    return f"gpu{i + 1:04d}"


def default_names(nodes: int) -> str:
    """The default names of a lab of `nodes` as a hostlist: gpu0001.. up to 9,999, else per hall."""
    if nodes <= FLAT_NAMES:
        return f"gpu[0001-{nodes:04d}]" if nodes > 1 else "gpu0001"
    halls = []
    for hall, start in enumerate(range(0, nodes, HALL_NODES), 1):
        halls.append(f"h{hall}-gpu[0001-{min(HALL_NODES, nodes - start):04d}]")
    return ",".join(halls)


def lab_names(nodes: int, names: str | None = None) -> list[str]:
    """The lab's node names in node order: `names` (a hostlist, e.g. a site's own) or the default.

    A site's naming (`gpu[0001-2048],login[01-04]`) is servable as long as it names exactly `nodes`
    valid inventory names: node i is still the i-th address, as the inventory's address pools count.
    """
    from clusterctl.inventory.hostlist import expand

    expanded = expand(names or default_names(nodes))
    if len(expanded) != nodes:
        raise ValueError(f"--names names {len(expanded)} nodes, not {nodes}")
    return expanded


def rack_name(i: int) -> str:
    return f"lab-r{i // NODES_PER_RACK + 1:02d}"


def bmc_address(i: int, base: str = DEFAULT_BASE) -> str:
    return str(ipaddress.IPv4Address(base) + i + 1)


class SimulatedFleet:
    """The lab's simulated servers (a BMC and a node's hardware each), with the faults injected into them."""

    def __init__(
        self,
        nodes: int,
        password: str,
        clock: SimClock,
        *,
        base_address: str = DEFAULT_BASE,
        port: int = DEFAULT_PORT,
        names: list[str] | None = None,
        bare: bool = False,
    ) -> None:
        self.clock = clock
        self.port = port
        self.bmcs: list[BMC] = []
        names = names or lab_names(nodes)
        for i in range(nodes):
            hw = NodeHardware(name=names[i], index=i, clock=clock)
            self.bmcs.append(BMC(hw, clock, address=bmc_address(i, base_address), password=password,
                                 os_name=None if bare else LAB_OS))
        self.by_address = {b.address: b for b in self.bmcs}
        self.by_name = {b.hw.name: b for b in self.bmcs}
        self.activity = 0  # requests and fault changes so far; the journal flush skips idle periods

    @property
    def names(self) -> set[str]:
        return set(self.by_name)

    def add_fault(self, fault: Fault) -> None:
        bmc = self.by_name.get(fault.node)
        if bmc is None:
            raise FaultError(f"unknown node {fault.node!r} in the lab")
        bmc.settle()
        self.activity += 1
        bmc.hw.faults.append(fault)
        bmc.on_fault(fault.kind, fault.params)

    def clear_faults(self, node: str | None = None, kind: str | None = None) -> int:
        if node is not None and node not in self.by_name:
            raise FaultError(f"unknown node {node!r} in the lab")
        cleared = 0
        self.activity += 1
        for bmc in [self.by_name[node]] if node else self.bmcs:
            keep = [f for f in bmc.hw.faults if kind is not None and f.kind != kind]
            cleared += len(bmc.hw.faults) - len(keep)
            bmc.hw.faults = keep
        return cleared

    def faults(self) -> list[dict[str, Any]]:
        return [f.as_dict() for b in self.bmcs for f in b.hw.faults]

    def report(self) -> list[dict[str, Any]]:
        return [dict(b.report(), rack=rack_name(i)) for i, b in enumerate(self.bmcs)]


# --- process entry ------------------------------------------------------------------------------------
def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _bind(address: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio only turns Nagle off (TCP_NODELAY) on accepted sockets whose proto
    # says TCP, and with Nagle on, every answer written as head + body waited ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot bind {address}:{port}: {exc.strerror}") from None
    sock.set_inheritable(False)
    return sock


async def _journal_loop(fleet: SimulatedFleet, path: Path, stop: asyncio.Event) -> None:
    """Flush what was done to each server to the lab dir every few seconds and at the end.

    Skipped while no BMC was asked anything: rendering 2,000 reports is not free on 2 cores.
    """
    last, seen = "", -1
    while True:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=3.0)
        if fleet.activity == seen and not stop.is_set():
            continue
        seen = fleet.activity
        text = json.dumps(fleet.report(), default=str)
        if text != last:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
            last = text
        if stop.is_set():
            return


def _lab_server_class() -> type:
    import uvicorn

    class LabServer(uvicorn.Server):
        """uvicorn, with two changes for the lab.

        Signals: uvicorn re-raises SIGTERM after serving, which would kill us before the journal
        is flushed; the lab handles its signals itself.
        TLS per socket: uvicorn gives every socket the one `config.ssl`, and each BMC has its own
        certificate (see `certs`), picked by the address the socket listens on (clients send no
        SNI for an IP address, so the socket is the only way to tell the BMCs apart).
        """

        tls: dict[str, ssl.SSLContext]  # by listening address; set before serving

        def capture_signals(self):  # type: ignore[no-untyped-def]
            return contextlib.nullcontext()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])  # lifespan and state; the listeners follow
            self.started = False  # not until every socket listens
            loop = asyncio.get_running_loop()
            config = self.config

            def protocol() -> asyncio.Protocol:
                return config.http_protocol_class(  # type: ignore[no-any-return, call-arg]
                    config=config, server_state=self.server_state, app_state=self.lifespan.state
                )

            for sock in sockets or []:
                ssl_context = self.tls[sock.getsockname()[0]]
                self.servers.append(
                    await loop.create_server(protocol, sock=sock, ssl=ssl_context, backlog=config.backlog)
                )
            self.started = True

    return LabServer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m clusterctl.sim", description="Serve the clusterctl lab.")
    p.add_argument("--lab-dir", type=Path, default=None)
    p.add_argument("--nodes", type=int, default=16)
    p.add_argument("--names", default=None, help="the nodes' names as a hostlist (default: gpu0001.., per hall "
                   "above 9,999)")
    p.add_argument("--time-scale", type=float, default=60.0)
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--faults", type=Path, default=None)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--base-address", default=DEFAULT_BASE)
    p.add_argument("--ssh-port", type=int, default=2222, help="SSH port of every node; 0: no SSH")
    p.add_argument("--ssh-base-address", default="127.2.0.0")
    p.add_argument("--bare", action="store_true",
                   help="servers with no OS on their disks, as racked: SSH answers once one is installed")
    p.add_argument("--ssh-host-keys", choices=["shared", "per-node"], default="shared",
                   help="one lab host key for every node (known_hosts: one line), or one key per node")
    p.add_argument(
        "--http",
        choices=["h11", "httptools"],
        default="h11",
        help="uvicorn HTTP parser; httptools is faster but answers 400 to unknown methods",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from clusterctl.sim.app import LabApp
    from clusterctl.sim.certs import server_tls_contexts
    from clusterctl.sim.control import ControlAPI

    args = parse_args(argv)
    lab_dir = labdir.ensure_lab_dir(args.lab_dir or labdir.default_lab_dir())
    if not 1 <= args.nodes <= MAX_NODES:
        raise SystemExit(f"--nodes must be between 1 and {MAX_NODES}")
    try:
        names = lab_names(args.nodes, args.names)
    except ValueError as exc:
        raise SystemExit(f"--names: {exc}") from None
    _raise_fd_limit(args.nodes * (2 if args.ssh_port else 1) + 512)
    password = labdir.ensure_secret(lab_dir / labdir.PASSWORD_FILE)
    token = labdir.ensure_secret(lab_dir / labdir.TOKEN_FILE, 24)
    clock = SimClock(args.time_scale)
    fleet = SimulatedFleet(args.nodes, password, clock, base_address=args.base_address, port=args.port,
                           names=names, bare=args.bare)
    if args.faults:
        for fault in load_fault_file(args.faults, fleet.names):
            fleet.add_fault(fault)
    sockets = [_bind(b.address, args.port) for b in fleet.bmcs]
    control_sock = _bind("127.0.0.1", 0)
    control_addr = ("127.0.0.1", control_sock.getsockname()[1])
    tls = server_tls_contexts(lab_dir, [b.address for b in fleet.bmcs] + ["127.0.0.1"])
    control_url = f"https://127.0.0.1:{control_addr[1]}"
    info = {
        "pid": os.getpid(),
        "control": control_url,
        "nodes": args.nodes,
        "names": args.names or default_names(args.nodes),
        "time_scale": args.time_scale,
        "latency_ms": args.latency_ms,
        "port": args.port,
        "base_address": args.base_address,
        "bare": args.bare,
        "lab_dir": str(lab_dir),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    lab_ssh = None
    if args.ssh_port:
        from clusterctl.sim.ssh import LabSSH

        lab_ssh = LabSSH(fleet, lab_dir, base_address=args.ssh_base_address, port=args.ssh_port,
                         time_scale=args.time_scale, latency_ms=args.latency_ms,
                         per_node_keys=args.ssh_host_keys == "per-node")
        info.update(lab_ssh.summary())
    control = ControlAPI(fleet, token, info)
    app = LabApp(fleet, latency_ms=args.latency_ms, control=control, control_address=control_addr)
    config = uvicorn.Config(
        app,
        proxy_headers=False,
        http=args.http,
        loop="asyncio",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
        server_header=False,
        date_header=True,
    )
    server = _lab_server_class()(config)
    server.tls = tls
    (lab_dir / labdir.PID_FILE).write_text(f"{os.getpid()}\n")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        stop = asyncio.Event()
        journal = asyncio.create_task(_journal_loop(fleet, lab_dir / labdir.JOURNAL_FILE, stop))
        serve = asyncio.create_task(server.serve(sockets=[*sockets, control_sock]))
        for _ in range(600):  # announce only once every socket listens
            if server.started or serve.done():
                break
            await asyncio.sleep(0.05)
        if server.started and lab_ssh is not None:
            try:
                await lab_ssh.start()
            except OSError as exc:
                # The BMCs do not depend on SSH (another lab may hold the SSH port): serve them, and
                # say why SSH is off in lab.json, which `lab up` and `lab status` show.
                print(f"SSH is off: {exc.strerror or exc}", file=sys.stderr, flush=True)
                for key in [k for k in info if k.startswith("ssh_")]:
                    del info[key]
                info["ssh_error"] = str(exc.strerror or exc)
        if server.started:
            labdir.write_json(lab_dir / labdir.INFO_FILE, info)
        await serve
        if lab_ssh is not None:
            lab_ssh.close()
        stop.set()
        await journal

    try:
        asyncio.run(run())
    finally:
        for name in (labdir.INFO_FILE, labdir.PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                if name != labdir.PID_FILE or labdir.read_pid(lab_dir) == os.getpid():
                    (lab_dir / name).unlink()
    return 0
