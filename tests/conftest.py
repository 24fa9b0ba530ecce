"""Fixtures every test gets: an isolated home, state store and lab directory.

Nothing a test does may touch the developer's real ~/.local/state, so HOME and the
clusterctl locations point into the test's own temporary directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("CLUSTERCTL_STATE", f"sqlite:///{home / 'state.db'}")
    monkeypatch.setenv("CLUSTERCTL_LAB_DIR", str(home / ".local" / "state" / "clusterctl" / "lab"))
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(home / ".ansible" / "tmp"))
    return home


@pytest.fixture
def clusterctl_bin() -> list[str]:
    """The real console script of this environment, for tests that run it as a process."""
    script = Path(sys.executable).with_name("clusterctl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "clusterctl"]


@pytest.fixture
def repo() -> Path:
    return REPO


def pytest_report_header(config: pytest.Config) -> str:
    return f"clusterctl tests; CI={os.environ.get('CI', '')!r}"
