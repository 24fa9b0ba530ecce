"""`clusterctl plan` and `clusterctl maintain`: day-2 drift, and rolling it out under a capacity floor."""

from __future__ import annotations

import typer

from clusterctl.cli import plan as plan_cli


def register(app: typer.Typer) -> None:
    plan_cli.register(app)
