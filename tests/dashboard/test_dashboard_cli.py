"""`clusterctl dashboard` as a real process: token printed once, served on loopback, Ctrl-C ends it; light imports."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.dashboard import stop, wait_up
from support.ports import free_port

from clusterctl.dashboard.auth import load_token

LAUNCH = "import sys; from clusterctl.cli import main; sys.argv[0] = 'clusterctl'; main.run()"


def start(port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", LAUNCH, "dashboard", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_first_start_prints_the_token_once(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLUSTERCTL_DASHBOARD_TOKEN", raising=False)
    env = {**os.environ}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(port, env)
    try:
        wait_up(base, proc)
        stored = isolated_home / ".local" / "state" / "clusterctl" / "dashboard-token"
        token = stored.read_text().strip()
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert httpx.get(base + "/api/v1/fleet", timeout=5).status_code == 401
        fleet = httpx.get(base + "/api/v1/fleet", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert fleet.status_code == 200 and fleet.json()["total"] == 0
    finally:
        code, out, err = stop(proc)
    assert code == 130, err  # Ctrl-C: the CLI's "interrupted", after uvicorn's graceful shutdown
    assert err.count(token) == 1 and token not in out  # printed once, on stderr

    # The next start reuses it (what `dashboard` calls; the process round trip is not repeated to keep this fast).
    again = load_token()
    assert not again.generated and again.value == token


def test_a_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start(port, {**os.environ, "CLUSTERCTL_DASHBOARD_TOKEN": "a-token-long-enough-123"})
        try:
            _out, err = proc.communicate(timeout=30)
        finally:
            stop(proc)
        code = proc.returncode
    assert code == 2 and err.strip().startswith("error: cannot listen on 127.0.0.1:") and "\n" not in err.strip()


def test_the_command_module_imports_nothing_heavy() -> None:
    probe = ("import sys; import clusterctl.cli.dashboard; "
             "print(sorted(m for m in ('fastapi', 'uvicorn', 'sqlalchemy', 'httpx', 'prometheus_client', 'jinja2') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
