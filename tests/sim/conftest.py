"""Fixtures for the lab: the ASGI app in-process, and the CLI with the lab always stopped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from support.cli import CLI
from support.lab import stop_lab_cli

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
def lab(cli: CLI) -> Iterator[CLI]:
    """The CLI, with the lab always stopped afterwards (and its process killed if `down` failed)."""
    try:
        yield cli
    finally:
        stop_lab_cli(cli)
