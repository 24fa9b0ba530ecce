"""How a node's records become one colour on the heatmap.

Precedence, strongest first: quarantined (an operator or a verdict took it out), fail (a failed
stage, latest check or burn-in), provisioning (a stage pending or running: the stage is shown),
warn (a latest check warned), ready (every recorded stage done or skipped), unknown (no records:
in the inventory, never touched). A node in flight shows as provisioning even with an old warning,
because what the operator needs first is where the pipeline is.
"""

from __future__ import annotations

from dataclasses import dataclass

QUARANTINED = "quarantined"
FAIL = "fail"
PROVISIONING = "provisioning"
WARN = "warn"
READY = "ready"
UNKNOWN = "unknown"

ORDER = (QUARANTINED, FAIL, PROVISIONING, WARN, READY, UNKNOWN)


@dataclass(slots=True)
class NodeFacts:
    """The facts about a node that decide its colour; gathered in bulk by `views.fleet`."""

    staged: bool = False
    failed_stage: str | None = None
    active_stage: str | None = None
    check_fail: bool = False
    check_warn: bool = False
    burnin_fail: bool = False
    quarantined: bool = False

    def state(self) -> str:
        if self.quarantined:
            return QUARANTINED
        if self.failed_stage or self.check_fail or self.burnin_fail:
            return FAIL
        if self.active_stage:
            return PROVISIONING
        if self.check_warn:
            return WARN
        if self.staged:
            return READY
        return UNKNOWN

    def stage(self) -> str | None:
        """The stage worth showing next to the state: where it failed, or where it is."""
        return self.failed_stage or self.active_stage

