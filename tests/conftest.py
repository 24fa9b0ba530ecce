"""Fixtures every test gets: an isolated home, state store and lab directory, and a check that
no process the test started outlives it; and the PostgreSQL fixtures, for any test that asks.

Nothing a test does may touch the developer's real ~/.local/state, so HOME and the
clusterctl locations point into the test's own temporary directory.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import leftovers
from support.cli import CLI, run_cli
from support.pgserver import postgres_server, postgres_url, store_url  # noqa: F401 - fixtures, offered to all tests

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # A pytest started in the background of a non-interactive shell (`make test &`, nohup) inherits
    # SIGINT ignored, and every child it starts would too: the tests that press Ctrl-C on a child
    # (`events --follow`, the dashboard) would see it ignored. Python's own handler is reset to the
    # default in each child it executes.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers", "leaves_processes(reason): the test may leave processes running (say why); they are still ended")


@pytest.fixture(autouse=True)
def no_leftover_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Error the test if a process it started is still running once its function-scoped fixtures are torn down.

    Declared first, with no dependencies, so that it is set up before every other function-scoped
    fixture and checks after all of them; session- and module-scoped servers are set up before it and
    are not the test's (see support.leftovers). Leftovers get a grace period, then SIGKILL, so that
    one leak does not spill into the next test.
    """
    if not leftovers.available():
        yield
        return
    watch = leftovers.Watch()
    previous = os.environ.get(leftovers.MARK_ENV)
    os.environ[leftovers.MARK_ENV] = watch.mark
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(leftovers.MARK_ENV, None)
        else:
            os.environ[leftovers.MARK_ENV] = previous
    left = watch.wait_for_leftovers()
    if not left:
        return
    described = [proc.describe() for proc in left]
    watch.kill(left)
    if request.node.get_closest_marker("leaves_processes") is None:
        pytest.fail(f"{len(left)} process(es) the test started outlived it, now killed:\n  " + "\n  ".join(described),
                    pytrace=False)


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
def cli(capsys: pytest.CaptureFixture[str]) -> CLI:
    """`clusterctl ...` in-process: (exit code, the JSON it printed or else its text, stderr)."""

    def run(*args: str) -> tuple[int, Any, str]:
        result = run_cli(capsys, *args)
        return result.code, result.parsed(), result.err

    return run


@pytest.fixture
def repo() -> Path:
    return REPO


def pytest_report_header(config: pytest.Config) -> str:
    return f"clusterctl tests; CI={os.environ.get('CI', '')!r}"
