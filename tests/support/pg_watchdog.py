"""Stops a test PostgreSQL when the process that started it is gone (pytest killed by a timeout, say).

`pg_ctl start` leaves the postmaster a child of init, so nothing ties it to pytest: a pytest killed
before its session teardown would leave the server and its directory behind. This watchdog starts
before the server (so a kill during initdb or start-up is covered too) in a session of its own and
detaches from its parent (a second fork), so a signal sent to pytest's process group does not reach it
and the leftover check does not take it for a test's process. While the server's directory exists it
waits for pytest to end (a pidfd, pidfd_open(2), where the kernel has them); then it sends the
postmaster SIGQUIT (PostgreSQL's "immediate" shutdown, see "Shutting Down the Server" in PostgreSQL's
manual) and removes the directory. The ordinary stop removes the directory itself, which ends the watchdog.

Standard library only: it runs as `python pg_watchdog.py WATCHED_PID BASE_DIR`, the data directory
being BASE_DIR/data.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import time
from pathlib import Path

CHECK_S = 1.0  # how often the directory is looked at (and the pid, without a pidfd)
START_S = 15.0  # how long a postmaster that is starting gets to write its pid file
SHUTDOWN_S = 20.0  # an immediate shutdown takes well under a second; SIGKILL after this


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parent_ended(parent: int, base: Path) -> bool:
    """Waits while `base` exists: True once `parent` has ended, False once `base` is gone (a normal stop)."""
    try:
        fd: int | None = os.pidfd_open(parent)
    except ProcessLookupError:
        return True
    except (AttributeError, OSError):
        fd = None
    try:
        while base.exists():
            if fd is not None:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                if poller.poll(CHECK_S * 1000):
                    return True
            elif not _alive(parent):
                return True
            else:
                time.sleep(CHECK_S)
        return False
    finally:
        if fd is not None:
            os.close(fd)


def _postmaster(data: Path) -> int | None:
    """The postmaster's pid from its pid file, once it is this data directory's server (bounded wait)."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((data / "postmaster.pid").read_text().split()[0])
            if str(data).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        if not data.exists():
            return None
        time.sleep(0.2)
    return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def watch(parent: int, base: Path) -> None:
    if not _parent_ended(parent, base):
        return  # stopped the ordinary way, by the session's teardown
    postmaster = _postmaster(base / "data")
    if postmaster is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGQUIT)
        if not _wait_gone(postmaster, SHUTDOWN_S):
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
            _wait_gone(postmaster, SHUTDOWN_S)
    shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str]) -> None:
    parent, base = int(argv[0]), Path(argv[1])
    if os.fork():  # the starter waits for this first process only; the watchdog itself goes on under init
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    watch(parent, base)


if __name__ == "__main__":
    main(sys.argv[1:])
