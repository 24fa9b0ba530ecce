"""Processes a test leaves running, for the autouse fixture in tests/conftest.py.

A test's processes are found two ways. Every process started while the test runs inherits
CLUSTERCTL_TEST_MARK=<this test's mark> from pytest's environment and keeps it wherever it goes
(a session of its own, reparented to init once its parent died). A process started with an
environment of its own is found if it descends from pytest. Processes that ran before the test
(servers of session- and module-scoped fixtures, which are set up before any function-scoped
fixture) and whatever they start later are not the test's, unless they carry its mark. A server
that a test starts on first use and keeps for the session must be started with `session_env()`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from clusterctl.processes import carries

MARK_ENV = "CLUSTERCTL_TEST_MARK"
GRACE_S = 5.0
POLL_S = 0.1
PROC = Path("/proc")
# Started by the standard library on first use and kept for the rest of the session, not by the test.
SESSION_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    start: int  # clock ticks after boot: with the pid, names one process even when pids are reused

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.start

    def describe(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}, state {self.state}): {command_line(self.pid) or '?'}"


def session_env() -> dict[str, str]:
    """The environment for a process that outlives the test that starts it on purpose (a server kept for
    the session, started on first use): without the test's mark."""
    return {k: v for k, v in os.environ.items() if k != MARK_ENV}


def available() -> bool:
    return (PROC / "self" / "stat").exists()


def table() -> dict[int, Proc]:
    procs = {}
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        procs[pid] = Proc(pid, int(fields[1]), fields[0].decode(), int(fields[19]))
    return procs


def command_line(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class Watch:
    """Started before a test's function-scoped fixtures, asked after their teardown."""

    def __init__(self) -> None:
        self.mark = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.before = {p.key for p in table().values()}

    def leftovers(self) -> list[Proc]:
        procs = table()
        me = os.getpid()
        found = []
        for proc in procs.values():
            if proc.pid == me or proc.state in ("Z", "X") or proc.key in self.before:
                continue
            if (self._descends_from_test(proc, procs, me) or carries(proc.pid, MARK_ENV, self.mark)) \
                    and not any(helper in command_line(proc.pid) for helper in SESSION_HELPERS):
                found.append(proc)
        return found

    def _descends_from_test(self, proc: Proc, procs: dict[int, Proc], me: int) -> bool:
        """Below pytest, with no process in between that ran before the test."""
        seen = set()
        parent = procs.get(proc.ppid)
        while parent is not None and parent.pid not in seen:
            if parent.pid == me:
                return True
            if parent.key in self.before:
                return False
            seen.add(parent.pid)
            parent = procs.get(parent.ppid)
        return False

    def wait_for_leftovers(self, grace_s: float = GRACE_S) -> list[Proc]:
        """What is still running after `grace_s` (processes being torn down get that long to go)."""
        deadline = time.monotonic() + grace_s
        while True:
            left = self.leftovers()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(POLL_S)

    def kill(self, procs: list[Proc], rounds: int = 20) -> None:
        """SIGKILL the leftovers, and what they start while dying, so that the next test starts clean."""
        for _ in range(rounds):
            for proc in procs:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(proc.pid, signal.SIGKILL)
            time.sleep(POLL_S)
            procs = self.leftovers()
            if not procs:
                return
