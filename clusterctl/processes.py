"""Ending every local process a run started, wherever it went.

Killing a process group is not enough: Ansible's workers call setsid(), so do torchrun's ranks,
and a child whose parent dies is handed to init, out of reach of any walk down from the parent.
A mark in the environment follows every process the run forks or execs: `mark_env` gives it to
the run's first process, `end_marked` finds and kills whatever still carries it. A program that
rewrites its own environment block (ssh's ControlPersist master, through setproctitle) loses the
mark; those need ending by their own means. Linux (/proc) only: elsewhere nothing is found.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from pathlib import Path

MARK_ENV = "CLUSTERCTL_RUN_MARK"
PROC = Path("/proc")
POLL_S = 0.05


def new_mark() -> str:
    return f"{os.getpid()}-{secrets.token_hex(8)}"


def mark_env(mark: str) -> dict[str, str]:
    """The environment entry that makes a process and all it starts findable by `marked(mark)`."""
    return {MARK_ENV: mark}


def carries(pid: int, name: str, value: str) -> bool:
    """Whether process `pid`'s environment has `name=value`; False once it is gone or not ours to read."""
    try:
        with open(PROC / str(pid) / "environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return False
    return f"\0{name}={value}\0".encode() in b"\0" + environ + b"\0"


def marked(mark: str) -> list[int]:
    """Live processes (never this one) whose environment carries `mark`; zombies have none left."""
    me = os.getpid()
    pids = (int(e.name) for e in (os.scandir(PROC) if PROC.is_dir() else ()) if e.name.isdigit())
    return [pid for pid in pids if pid != me and carries(pid, MARK_ENV, mark)]


def end_marked(mark: str, *, wait_s: float = 5.0) -> list[int]:
    """SIGKILL every process carrying `mark`, again until none is left (a dying parent may have just
    forked) or `wait_s` has passed; returns the pids it signalled."""
    ended: list[int] = []
    deadline = time.monotonic() + wait_s
    while True:
        alive = marked(mark)
        if not alive:
            return ended
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            if pid not in ended:
                ended.append(pid)
        if time.monotonic() >= deadline:
            return ended
        time.sleep(POLL_S)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
