"""The lab directory: where it is, its private files, and whether a lab process runs for it.

Layout (`$CLUSTERCTL_LAB_DIR`, default ~/.local/state/clusterctl/lab, mode 0700):
ca.pem, ca-key.pem (0600), server.pem, server-key.pem (0600), bmc-password (0600),
control-token (0600), lab.pid, lab.json (pid, control URL, nodes, options; written
once the process answers), journal.json (what was done to each server), sim.log,
inventory.yaml (only for a node count other than the default 16),
ssh/ (id_ed25519 + .pub: the client key the lab inventory references; host-key-seed; known_hosts:
see clusterctl.sim.ssh), nodes/<name>/ (each node's sandbox and HOME for commands run over SSH).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from clusterctl.state.private import private_dir

PASSWORD_FILE = "bmc-password"  # noqa: S105 - a file name, not a password
TOKEN_FILE = "control-token"  # noqa: S105
PID_FILE = "lab.pid"
INFO_FILE = "lab.json"
JOURNAL_FILE = "journal.json"
LOG_FILE = "sim.log"


def default_lab_dir() -> Path:
    env = os.environ.get("CLUSTERCTL_LAB_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "state" / "clusterctl" / "lab"


def ensure_lab_dir(path: Path) -> Path:
    return private_dir(path)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, never briefly readable by others."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def ensure_secret(path: Path, nbytes: int = 18) -> str:
    """Keep an existing secret (inventories point at the file), else create a random one."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_hex(nbytes)  # hex: never starts with "-", safe on any command line
    write_private(path, value + "\n")
    return value


def read_info(lab_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((lab_dir / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


def read_pid(lab_dir: Path) -> int | None:
    try:
        return int((lab_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours still "exists"; treat it as gone
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
