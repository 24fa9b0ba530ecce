"""`clusterctl inventory ...`: check, show and export the site inventory."""

from __future__ import annotations

import typer

app = typer.Typer(help="Check, show and export the site inventory.", no_args_is_help=True)
