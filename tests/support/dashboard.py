"""`clusterctl dashboard` as its own process: waiting until it serves, and the operator's Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import httpx


def wait_up(base: str, proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """Until GET /healthz answers 200; a process that ends first fails the test with its output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, ("the dashboard ended before it served", proc.communicate())
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the dashboard did not come up")


def stop(proc: subprocess.Popen[Any], timeout: float = 15.0) -> tuple[int, Any, Any]:
    """SIGINT, as Ctrl-C sends, then SIGKILL if it does not end in time: (exit code, stdout, stderr)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err
