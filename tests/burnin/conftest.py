"""Fixtures for the burn-in launcher tests: the CLI in-process, and a real Slurm cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cli import Result, run_cli
from support.slurm import SlurmCluster, available

# Tiny model, few steps, one thread per rank: the two-core test machine runs these in seconds.
_TINY = ["--model", "transformer-tiny", "--steps", "30", "--log-every", "3", "--checksum-every", "15",
        "--threads", "1"]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `clusterctl ARGS` in this process through the real entry point; returns code, stdout, stderr."""
    return lambda *args: run_cli(capsys, *args)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    why = available()
    if why:
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), ["node1", "node2", "node3"])
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    path = tmp_path / "burnin-out"
    path.mkdir()
    return path


@pytest.fixture
def tiny() -> list[str]:
    """Workload options small enough for a two-core machine: 30 steps of transformer-tiny."""
    return list(_TINY)
