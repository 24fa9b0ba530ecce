"""The `lab` fixture of the provision tests: a `support.provision_lab.Lab`, always brought down afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.provision_lab import Lab


@pytest.fixture
def lab(capsys: pytest.CaptureFixture[str]) -> Iterator[Lab]:
    running = Lab(capsys)
    try:
        yield running
    finally:
        running.down()
