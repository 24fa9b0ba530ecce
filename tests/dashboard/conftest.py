"""Dashboard fixtures: a store filled through the store API, the app served by uvicorn on loopback, a browser."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import CHROMIUM, CHROMIUM_ARGS, TOKEN
from support.asgi import Served

from clusterctl.dashboard.auth import Token
from clusterctl.state.store import Store


@pytest.fixture
def token() -> Token:
    return Token(TOKEN, "test")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(app) -> base URL of the app on a free loopback port; every server is stopped afterwards."""
    started: list[Served] = []

    def start(app: Any) -> str:
        started.append(Served(app, log_config=None, access_log=False).start())
        return started[-1].url

    yield start
    for served in started:
        served.stop()


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


