"""Stops a test PostgreSQL when the process that started it is gone (pytest killed by a timeout, say).

`pg_ctl start` leaves the postmaster a child of init, so nothing ties it to pytest: a pytest killed
before its session teardown would leave the server and its data directory behind. This watchdog is
started next to the server in a session of its own and detaches from its parent (a second fork), so a
signal sent to pytest's process group does not reach it and the leftover check does not take it for a
test's process. It waits on pidfds (pidfd_open(2)) for either pytest or the postmaster to end: pytest
first means SIGQUIT to the postmaster (PostgreSQL's "immediate" shutdown, see the server-shutdown page
of PostgreSQL's manual), then the directory goes; the postmaster first (a normal `pg_ctl stop`) means
the watchdog's work is done.

Standard library only: it runs as `python pg_watchdog.py WATCHED_PID POSTMASTER_PID BASE_DIR`.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import time

POLL_S = 0.5  # only where pidfds are not available
SHUTDOWN_S = 20.0  # an immediate shutdown takes well under a second; SIGKILL after this


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_first(pids: list[int], timeout: float | None = None) -> int | None:
    """The first of `pids` to end (None on timeout)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        fds = {os.pidfd_open(pid): pid for pid in pids}
    except (AttributeError, OSError):
        fds = {}
    if len(fds) == len(pids):
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = poller.poll(None if left is None else left * 1000)
                if ready:
                    return fds[ready[0][0]]
                if deadline is not None and time.monotonic() >= deadline:
                    return None
        finally:
            for fd in fds:
                os.close(fd)
    for fd in fds:
        os.close(fd)
    while deadline is None or time.monotonic() < deadline:
        for pid in pids:
            if not _alive(pid):
                return pid
        time.sleep(POLL_S)
    return None


def watch(parent: int, postmaster: int, base: str) -> None:
    if _wait_first([parent, postmaster]) == postmaster:
        return  # stopped the ordinary way, by the session's teardown
    with contextlib.suppress(ProcessLookupError):
        os.kill(postmaster, signal.SIGQUIT)
    if _wait_first([postmaster], SHUTDOWN_S) is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGKILL)
        _wait_first([postmaster], SHUTDOWN_S)
    shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str]) -> None:
    parent, postmaster, base = int(argv[0]), int(argv[1]), argv[2]
    if os.fork():  # the starter waits for this first process only; the watchdog itself goes on under init
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    watch(parent, postmaster, base)


if __name__ == "__main__":
    main(sys.argv[1:])
