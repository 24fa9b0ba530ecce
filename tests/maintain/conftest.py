"""Fixtures for the maintenance tests: a lab with BMCs and SSH."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.lab import Lab, start_lab


@pytest.fixture
def lab_with_ssh(tmp_path: Path) -> Iterator[Lab]:
    """Four lab nodes, BMCs and SSH, simulated time compressed so firmware jobs and reboots are quick."""
    with start_lab(tmp_path / "lab", 4, time_scale=2000) as running:
        yield running
