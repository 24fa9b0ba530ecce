"""The tests' private PostgreSQL does not outlive the process that started it: killed with SIGKILL (as a
timeout kills pytest), its server stops and its directory goes; stopped normally, its watchdog goes too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import leftovers, pgserver

TESTS = Path(__file__).resolve().parents[1]
BOUND_S = 30.0  # the watchdog reacts at once; this is room for a loaded machine
STARTER = f"""
import json, os, sys, time
sys.path.insert(0, {str(TESTS)!r})
from support import pgserver
server = pgserver.start_private()
postmaster = int((server.datadir / "postmaster.pid").read_text().split()[0])
print(json.dumps({{"postmaster": postmaster, "base": str(server.datadir.parent)}}), flush=True)
time.sleep(300)
"""


@pytest.fixture(autouse=True)
def binaries() -> None:
    if pgserver._bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL binaries, and CI must run this (tools/system-deps.sh installs them)")
        pytest.skip("no PostgreSQL binaries")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] not in "ZX"
    except FileNotFoundError:
        return False


def watchdogs(base: str) -> list[int]:
    return [pid for pid in leftovers.table() if "pg_watchdog" in leftovers.command_line(pid)
            and base in leftovers.command_line(pid)]


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} after {BOUND_S:g} s"
        time.sleep(0.1)


def test_server_dies_with_the_process_that_started_it() -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert starter.stdout is not None
        line = starter.stdout.readline()
        assert line, starter.communicate(timeout=30)[1]
        started = json.loads(line)
        postmaster, base = started["postmaster"], started["base"]
        assert alive(postmaster) and Path(base).is_dir() and watchdogs(base)
        starter.send_signal(signal.SIGKILL)  # no teardown, as when a timeout kills pytest
        starter.wait(30)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(30)
    wait_until(lambda: not alive(postmaster), "the server still runs")
    wait_until(lambda: not Path(base).exists(), "its directory is still there")
    wait_until(lambda: not watchdogs(base), "its watchdog still runs")


def test_a_normal_stop_ends_the_watchdog_too() -> None:
    server = pgserver.start_private()
    assert server.datadir is not None
    base = str(server.datadir.parent)
    postmaster = int((server.datadir / "postmaster.pid").read_text().split()[0])
    assert watchdogs(base)
    server.stop()
    assert not alive(postmaster)
    wait_until(lambda: not watchdogs(base), "the watchdog outlived the server")
