"""The lab's nodes over SSH: one asyncssh listener per node address, in the lab's own event loop.

Node i listens on the i-th host address of the lab inventory's SSH pool (127.2.0.0/16: node 0
on 127.2.0.1, as clusterctl.inventory's pool numbering gives it), port 2222 by default.
Keys live in LAB_DIR/ssh/:

- id_ed25519 (+ .pub), 0600: the client key the lab inventory references; it is the only key
  the nodes accept, for the lab's user only, and only public-key authentication is offered;
- host-key-seed, 0600: the host keys are ed25519 keys derived from this seed (sha256), so they
  cost no files and survive a restart. By default (`shared`) every node presents ONE lab host
  key and known_hosts is a single line naming every node's `[address]:port`; `per-node` gives
  each node its own key (seed + node name) and known_hosts a line per node. Shared is the
  default because paramiko's HostKeys.load checks each line against all earlier ones: a
  2,000-line known_hosts costs over a second of controller CPU per connection (0.3 s at 1,000),
  a one-line file a millisecond. With a client that parses known_hosts once, per-node is as cheap;
- known_hosts: for RejectPolicy clients (clusterctl.ssh), as above.

A node whose server is powered off (its BMC's power state), has no OS on its disk (`lab up --bare`)
or is running an installer closes every SSH connection at once, as a host that is down would drop
them; a BMC-only outage (bmc_unreachable) leaves SSH alone, as on a real server. What each exec
request does is clusterctl.sim.sshexec's job; the SFTP subsystem (asyncssh's SFTPServer, on the real
filesystem) serves file transfers.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from clusterctl.sim import labdir, sshexec

if TYPE_CHECKING:
    from clusterctl.sim.bmc import BMC
    from clusterctl.sim.fleet import SimulatedFleet

DEFAULT_SSH_BASE = "127.2.0.0"
DEFAULT_SSH_PORT = 2222
LAB_USER = "clusterctl"
SSH_DIR = "ssh"
CLIENT_KEY = "id_ed25519"
KNOWN_HOSTS = "known_hosts"
HOST_KEY_SEED = "host-key-seed"
LOGIN_TIMEOUT_S = 30.0


def ssh_address(i: int, base: str = DEFAULT_SSH_BASE) -> str:
    """Node i's address: the i-th host address of the pool, skipping the network address."""
    return str(ipaddress.IPv4Address(base) + i + 1)


def endpoint(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def ssh_dir(lab_dir: Path) -> Path:
    path = lab_dir / SSH_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    return path


def ensure_client_key(lab_dir: Path) -> asyncssh.SSHKey:
    """The lab's client key: kept when present (a running inventory points at it), else created."""
    path = ssh_dir(lab_dir) / CLIENT_KEY
    if path.exists():
        try:
            return asyncssh.read_private_key(str(path))
        except (OSError, ValueError, asyncssh.KeyImportError):
            pass
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{LAB_USER}@clusterctl-lab")
    labdir.write_private(path, key.export_private_key("openssh").decode())
    labdir.write_private(path.with_name(CLIENT_KEY + ".pub"), key.export_public_key("openssh").decode())
    return key


def host_keys(lab_dir: Path, names: list[str], per_node: bool = False) -> dict[str, asyncssh.SSHKey]:
    """Every node's ed25519 host key, derived from the lab's seed (and the node's name when per_node)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed_file = ssh_dir(lab_dir) / HOST_KEY_SEED
    seed = seed_file.read_text().strip() if seed_file.exists() else ""
    if not seed:
        seed = secrets.token_hex(32)
        labdir.write_private(seed_file, seed + "\n")

    def derive(label: str) -> asyncssh.SSHKey:
        raw = hashlib.sha256(f"{seed}:{label}".encode()).digest()
        pem = Ed25519PrivateKey.from_private_bytes(raw).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        return asyncssh.import_private_key(pem)

    if not per_node:
        shared = derive("lab")
        return dict.fromkeys(names, shared)
    return {name: derive(name) for name in names}


def public_line(key: asyncssh.SSHKey) -> str:
    """`ssh-ed25519 AAAA...`, without the comment."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def write_known_hosts(lab_dir: Path, entries: list[tuple[str, int, asyncssh.SSHKey]]) -> Path:
    """One line per distinct key, naming every endpoint that presents it."""
    by_key: dict[str, list[str]] = {}
    for address, port, key in entries:
        by_key.setdefault(public_line(key), []).append(endpoint(address, port))
    path = ssh_dir(lab_dir) / KNOWN_HOSTS
    labdir.write_private(path, "".join(f"{','.join(hosts)} {key}\n" for key, hosts in by_key.items()))
    return path


class _NodeServer(asyncssh.SSHServer):
    """One connection to one lab node: public-key authentication with the lab's client key only."""

    def __init__(self, lab: LabSSH, bmc: BMC) -> None:
        self._lab = lab
        self._bmc = bmc

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        if not self._bmc.os_answers():
            conn.close()

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self._lab.user and key.public_data == self._lab.client_public


class LabSSH:
    """Every node's SSH listener, started and closed with the lab process."""

    def __init__(self, fleet: SimulatedFleet, lab_dir: Path, *, base_address: str = DEFAULT_SSH_BASE,
                 port: int = DEFAULT_SSH_PORT, user: str = LAB_USER, time_scale: float = 60.0,
                 latency_ms: float = 0.0, per_node_keys: bool = False) -> None:
        self.fleet = fleet
        self.lab_dir = lab_dir
        self.base_address = base_address
        self.port = port
        self.user = user
        self.time_scale = time_scale
        self.latency_s = latency_ms / 1000.0
        self.client_public = ensure_client_key(lab_dir).public_data
        self.keys = host_keys(lab_dir, [b.hw.name for b in fleet.bmcs], per_node_keys)
        self.per_node_keys = per_node_keys
        self.addresses = {b.hw.name: ssh_address(i, base_address) for i, b in enumerate(fleet.bmcs)}
        self._servers: list[Any] = []

    def write_known_hosts(self) -> Path:
        return write_known_hosts(
            self.lab_dir, [(self.addresses[b.hw.name], self.port, self.keys[b.hw.name]) for b in self.fleet.bmcs])

    async def start(self) -> None:
        """Listen on every node address; raises OSError with the address when one cannot bind."""
        for bmc in self.fleet.bmcs:
            address = self.addresses[bmc.hw.name]
            try:
                server = await asyncssh.create_server(
                    functools.partial(_NodeServer, self, bmc), address, self.port,
                    server_host_keys=[self.keys[bmc.hw.name]],
                    process_factory=functools.partial(self._serve, bmc), encoding=None,
                    sftp_factory=True, allow_scp=True, reuse_address=True,
                    login_timeout=LOGIN_TIMEOUT_S, keepalive_interval=0,
                )
            except OSError as exc:
                self.close()
                raise OSError(exc.errno, f"cannot listen for SSH on {address}:{self.port}: {exc.strerror}") from None
            self._servers.append(server)
        self.write_known_hosts()

    async def _serve(self, bmc: BMC, process: asyncssh.SSHServerProcess) -> None:
        await sshexec.handle(process, bmc.hw, self.lab_dir, self.user, self.time_scale, self.latency_s)

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()

    def summary(self) -> dict[str, Any]:
        names = [b.hw.name for b in self.fleet.bmcs]
        return {"ssh_port": self.port, "ssh_base_address": self.base_address, "ssh_user": self.user,
                "ssh_host_keys": "per-node" if self.per_node_keys else "shared",
                "ssh_first": self.addresses[names[0]], "ssh_last": self.addresses[names[-1]],
                "ssh_known_hosts": str(self.lab_dir / SSH_DIR / KNOWN_HOSTS),
                "ssh_key": str(self.lab_dir / SSH_DIR / CLIENT_KEY)}
