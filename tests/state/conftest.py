"""Store fixtures: every store test runs on SQLite and on PostgreSQL (tests/conftest.py's `store_url`), each
on a fresh database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    from clusterctl.state.store import Store

    with Store.open(store_url) as opened:
        yield opened
