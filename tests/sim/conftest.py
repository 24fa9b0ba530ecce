"""Fixtures for the lab: the ASGI app in-process, and the CLI with `lab` mounted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from clusterctl.sim.app import LabApp
from clusterctl.sim.clock import SimClock
from clusterctl.sim.fleet import SimulatedFleet

PASSWORD = "lab-test-pw"
BMC1 = "https://127.1.0.1:8443"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fleet() -> SimulatedFleet:
    return SimulatedFleet(4, PASSWORD, SimClock(1.0))


@pytest.fixture
async def bmc(fleet: SimulatedFleet) -> AsyncIterator[httpx.AsyncClient]:
    """A client for gpu0001's BMC, authenticated with basic auth, through the in-process app."""
    transport = httpx.ASGITransport(app=LabApp(fleet))
    async with httpx.AsyncClient(transport=transport, base_url=BMC1, auth=("root", PASSWORD)) as client:
        yield client


@pytest.fixture
async def anon(fleet: SimulatedFleet) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=LabApp(fleet))
    async with httpx.AsyncClient(transport=transport, base_url=BMC1) as client:
        yield client


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, Any, str]]:
    """`clusterctl ...` in-process with `lab` mounted: (exit code, parsed JSON or text, stderr)."""
    from clusterctl.cli import main as main_cli


    def run(*args: str) -> tuple[int, Any, str]:
        capsys.readouterr()
        code = main_cli.run(list(args))
        out, err = capsys.readouterr()
        try:
            return code, json.loads(out), err
        except ValueError:
            return code, out, err

    return run
