"""The pipeline's stages, in order; each module offers `run(ctx) -> StageResult` and `plan(ctx) -> dict`.

`runtime` is not among the engine's default stages: the os stage's playbook installs the runtime too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from clusterctl.provision.stages import bios, boot, discover, firmware, os, runtime, validate

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext, StageResult

STAGES: dict[str, ModuleType] = {
    "discover": discover,
    "firmware": firmware,
    "bios": bios,
    "boot": boot,
    "os": os,
    "runtime": runtime,
    "validate": validate,
}
READY = "ready"
"""Not a stage that acts: the row that says a node went through every selected stage."""
NEEDS_BMC = frozenset({"discover", "firmware", "bios", "boot"})

Run = Callable[["NodeContext"], Awaitable["StageResult"]]
Plan = Callable[["NodeContext"], Awaitable[dict[str, Any]]]
