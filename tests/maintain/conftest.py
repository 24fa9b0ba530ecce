"""Fixtures for the maintenance tests: a lab with BMCs and SSH, and a real Slurm over the test module's NODES."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.lab import Lab, start_lab
from support.slurm import SlurmCluster, available


@pytest.fixture
def lab_with_ssh(tmp_path: Path) -> Iterator[Lab]:
    """Four lab nodes, BMCs and SSH, simulated time compressed so firmware jobs and reboots are quick."""
    with start_lab(tmp_path / "lab", 4, time_scale=2000) as running:
        yield running


@pytest.fixture
def slurm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SlurmCluster]:
    """One slurmd per name in the test module's NODES, partition gpu; a missing Slurm fails under CI."""
    why = available()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path / "slurm", request.module.NODES, partition="gpu")
    try:
        yield cluster
    finally:
        cluster.stop()
