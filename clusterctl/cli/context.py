"""Global CLI settings shared by every command, and the one way commands print results.

Commands build a plain JSON-able result and hand it to `emit`, together with a
function that draws it for people; `--output json` then prints the same data
that the table shows, so scripts and people never see different facts.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console

from clusterctl import log
from clusterctl.state.private import state_dir


def default_state_url() -> str:
    env = os.environ.get("CLUSTERCTL_STATE")
    if env:
        return env
    return f"sqlite:///{state_dir() / 'state.db'}"


@dataclass
class Settings:
    output: str = "table"
    verbosity: int = 0
    state_url: str = field(default_factory=default_state_url)
    # Piped output (logs, CI, `| less`) gets wide tables instead of Rich's 80-column default.
    # No emoji codes: a message quoting a file position (`inv.yaml:100:4`) must not print as "inv.yaml💯4".
    out: Console = field(
        default_factory=lambda: Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160, emoji=False)
    )
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True, emoji=False))

    @property
    def json(self) -> bool:
        return self.output == "json"

    def emit(self, data: Any, draw: Callable[[Console], None] | None = None) -> None:
        if self.json or draw is None:
            sys.stdout.write(log.mask_secrets(json.dumps(data, indent=2, default=str)) + "\n")
            sys.stdout.flush()
        else:
            draw(self.out)

    def note(self, message: str) -> None:
        """Human progress text: stderr, so stdout stays clean for JSON and pipes."""
        if self.verbosity >= 0:
            self.err.print(log.scrub(message), highlight=False)

    def open_store(self):  # noqa: ANN201 - avoids importing the store for --help
        from clusterctl.state.store import Store

        return Store.open(self.state_url)


def settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj
