"""Dashboard fixtures: a store filled through the store API, the app served by uvicorn on loopback, a browser."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import CHROMIUM, CHROMIUM_ARGS, TOKEN

from clusterctl.dashboard.auth import Token
from clusterctl.state.store import Store


@pytest.fixture
def token() -> Token:
    return Token(TOKEN, "test")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@dataclass
class Served:
    url: str
    server: Any
    thread: threading.Thread


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(app) -> base URL of the app on a free loopback port; every server is stopped afterwards."""
    import uvicorn

    started: list[Served] = []

    def start(app: Any) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        served = Served(f"http://127.0.0.1:{port}", server, thread)
        started.append(served)
        return served.url

    yield start
    for served in started:
        served.server.should_exit = True
        served.thread.join(timeout=15)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must drive the real browser: tools/system-deps.sh installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


