"""Store fixtures: every store test runs on SQLite and on PostgreSQL, each on a fresh database."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest


def load_pgserver() -> ModuleType:
    """tests/state/pgserver.py as one shared module, whichever test directory asks first."""
    name = "_clusterctl_tests_pgserver"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("pgserver.py"))
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


pgserver = load_pgserver()
postgres_server = pgserver.postgres_server
postgres_url = pgserver.postgres_url
store_url = pgserver.store_url


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    from clusterctl.state.store import Store

    with Store.open(store_url) as opened:
        yield opened
