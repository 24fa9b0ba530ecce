"""`clusterctl ...` as tests run it: in this process through the real entry point, or as its own process.

In-process is fast and lets a test monkeypatch; its own process is how an operator runs it, and what a
long sweep needs so that it does not depend on what earlier tests left in this interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

CLI = Callable[..., tuple[int, Any, str]]
"""The `cli` fixture: (exit code, the JSON it printed or else its text, stderr)."""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def parsed(self) -> Any:
        """The JSON printed, or the text where it was not JSON (tables, errors)."""
        try:
            return self.json()
        except ValueError:
            return self.out

    def document(self, command: str) -> Any:
        """The JSON printed; a command that printed none fails the test with its output's tails."""
        try:
            return self.json()
        except ValueError:
            pytest.fail(f"{command} printed no JSON (exit {self.code}): {self.out[-500:]} {self.err[-1500:]}")


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> Result:
    from clusterctl.cli import main

    capsys.readouterr()
    code = main.run([str(a) for a in args])
    out, err = capsys.readouterr()
    return Result(code, out, err)


def run_cli_process(*args: str, timeout: float) -> Result:
    proc = subprocess.run([sys.executable, "-m", "clusterctl", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr)
