"""Where and how to reach one node over SSH, built from the inventory without reading any key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clusterctl.ssh.errors import SSHConfigError

if TYPE_CHECKING:
    from clusterctl.inventory.site import Inventory, Node


@dataclass(frozen=True, slots=True)
class SSHTarget:
    name: str
    address: str
    port: int
    user: str
    key_file: Path | None = None
    """The private key *file*; paramiko reads it, clusterctl never holds or logs its contents."""
    known_hosts: Path | None = None
    """None: the user's ~/.ssh/known_hosts."""

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def target_from_node(node: Node, inventory: Inventory) -> SSHTarget:
    """THE seam between the inventory and SSH. Only `file:` keys work: paramiko needs a key file."""
    ssh = node.ssh
    if not ssh.address:
        raise SSHConfigError(f"{node.name}: no SSH address in the inventory")
    key_file = None
    if ssh.key is not None:
        if ssh.key.scheme != "file":
            raise SSHConfigError(f"{node.name}: ssh key {ssh.key} must be a file: reference (a private key file)")
        key_file = ssh.key.path(inventory.secrets)
        if not key_file.is_file():
            raise SSHConfigError(f"{node.name}: ssh key {ssh.key}: {key_file} does not exist")
    known_hosts = inventory.resolve_path(ssh.known_hosts) if ssh.known_hosts else None
    return SSHTarget(
        name=node.name, address=ssh.address, port=ssh.port, user=ssh.user, key_file=key_file,
        known_hosts=known_hosts,
    )
