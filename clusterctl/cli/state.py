"""`clusterctl status` and `clusterctl events`: read-only views of the state store."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
