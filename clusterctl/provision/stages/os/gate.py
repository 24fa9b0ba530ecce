"""The playbook's reboots, admitted by the engine's power gate like every other reboot of the run.

The driver role reboots a node from inside ansible-playbook, a process of its own; the rack limits
(`max_rebooting`, `power_budget_w`) live in the engine's `PowerGate`, which firmware and BIOS reboots
of the same run also go through. So the os stage serves the gate on a Unix socket in a private
directory, and the role's reboot handler asks it first, from the controller
(`playbooks/bin/reboot_slot.py acquire SOCKET NODE`), and gives the slot back after
the node is up (`release`). A slot the playbook never gave back (it failed, timed out, was cancelled)
is returned when its batch ends.

The protocol is one line each way: `acquire NODE` or `release NODE`, answered `ok` or `error: ...`.
Each batch gets a gate of its own, open while its playbook runs; only that batch's nodes may hold a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterctl import log

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory
    from clusterctl.provision.power import PowerGate

_log = log.get("provision.os")
SOCKET_NAME = "gate.sock"
PREFIX = "clusterctl-gate-"
STALE_AFTER_S = 600.0


def remove_stale_gates(tmp: Path | None = None) -> int:
    """Remove the gate directories of controllers that were killed (SIGKILL skips `__aexit__`).

    A gate is stale when nothing listens on its socket any more; a live controller's gate answers
    the connect, so two controllers on one host never remove each other's. One made in the last
    minutes is left alone: another controller may be between creating it and listening on it.
    Only our own are touched.
    """
    removed = 0
    settled = time.time() - STALE_AFTER_S
    for path in Path(tmp or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        with contextlib.suppress(OSError):
            info = path.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mtime > settled:
                continue
            if _listening(path / SOCKET_NAME):
                continue
            shutil.rmtree(path)
            removed += 1
    return removed


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class RebootGate:
    """The power gate, served to one batch's playbook run: `async with RebootGate(...)` on the engine's loop."""

    def __init__(self, gate: PowerGate, inventory: Inventory, names: Iterable[str]) -> None:
        self.gate = gate
        self.inventory = inventory
        self.allowed = set(names)
        self.held: dict[str, AbstractAsyncContextManager[Any]] = {}
        self._server: asyncio.AbstractServer | None = None
        remove_stale_gates()
        self._dir = Path(tempfile.mkdtemp(prefix=PREFIX))  # 0700; short, for sun_path
        self.path = self._dir / SOCKET_NAME

    async def __aenter__(self) -> RebootGate:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for name in list(self.held):
            await self._release(name)
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self._dir.rmdir()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode("ascii", "replace").split()
            answer = await self._handle(line)
        except Exception as exc:  # noqa: BLE001 - the client gets the reason; the engine carries on
            answer = f"error: {exc}"
        writer.write(answer.encode() + b"\n")
        with contextlib.suppress(OSError):
            await writer.drain()
            writer.close()

    async def _handle(self, line: list[str]) -> str:
        if len(line) != 2 or line[0] not in ("acquire", "release"):
            return "error: expected 'acquire NODE' or 'release NODE'"
        verb, name = line
        if name not in self.allowed:
            return f"error: {name} is not in this playbook run"
        if verb == "release":
            await self._release(name)
            return "ok"
        if name not in self.held:
            slot = self.gate.rebooting(self.inventory.nodes[name])
            await slot.__aenter__()
            self.held[name] = slot
            _log.info("%s: the playbook's reboot admitted by the power gate", name)
        return "ok"

    async def _release(self, name: str) -> None:
        slot = self.held.pop(name, None)
        if slot is not None:
            await slot.__aexit__(None, None, None)
