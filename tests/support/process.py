"""Ending a server process that tests and benchmarks started, and reading what CPU it used."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any


def terminate(proc: subprocess.Popen[Any], timeout: float = 20.0, kill_timeout: float = 10.0) -> None:
    """SIGTERM, so that it shuts down as an operator's `kill` would; SIGKILL if it has not ended in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(kill_timeout)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a running process (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
