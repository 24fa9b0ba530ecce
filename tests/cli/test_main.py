"""The entry point: exit codes, global options in any position, and a fast, light --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clusterctl.cli.main import hoist_global_options, run

HEAVY = ("torch", "kubernetes", "ansible_runner", "fastapi", "uvicorn")


def test_version_and_help_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert "clusterctl" in capsys.readouterr().out
    assert run(["--help"]) == 0
    assert "inventory" in capsys.readouterr().out


def test_unknown_option_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--no-such-option"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_global_options_may_follow_the_command() -> None:
    argv = ["inventory", "check", "site.yaml", "--output", "json", "-vv", "--state=sqlite:///x.db"]
    assert hoist_global_options(argv) == [
        "--output", "json", "-v", "-v", "--state=sqlite:///x.db", "inventory", "check", "site.yaml",
    ]
    # Arguments after `--` belong to the command, even if they look like global options.
    assert hoist_global_options(["events", "--", "-o", "x"]) == ["events", "--", "-o", "x"]


GROUPS = ("inventory", "status", "bmc", "lab", "provision", "validate", "burnin", "check", "trends", "dashboard",
          "monitor")


@pytest.mark.parametrize("argv", [["--help"], *([group, "--help"] for group in GROUPS)])
def test_help_does_not_import_heavy_modules(argv: list[str], clusterctl_bin: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "clusterctl", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
