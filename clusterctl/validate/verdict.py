"""Check results and the per-node verdict they add up to: the worst status of its checks.

Failures are data: every check result names the rule that judged it and the hint an operator
acts on, so the table, the JSON output and the store all carry the same reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

ORDER = {"pass": 0, "warn": 1, "fail": 2}


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=ORDER.__getitem__, default="pass")


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str
    detail: str
    rule: str | None = None
    remediation: str | None = None
    data: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "rule": self.rule,
                "remediation": self.remediation if self.status != "pass" else None}


@dataclass
class NodeVerdict:
    node: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks)

    def problems(self) -> list[CheckResult]:
        """Failing checks first, then warnings."""
        bad = [c for c in self.checks if c.status != "pass"]
        return sorted(bad, key=lambda c: -ORDER[c.status])

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "status": self.status, "checks": [c.as_dict() for c in self.checks]}


def summarize(verdicts: Sequence[NodeVerdict]) -> dict[str, Any]:
    statuses = Counter(v.status for v in verdicts)
    failing = Counter(c.name for v in verdicts for c in v.checks if c.status == "fail")
    warning = Counter(c.name for v in verdicts for c in v.checks if c.status == "warn")
    return {
        "nodes": len(verdicts),
        **{s: statuses.get(s, 0) for s in ORDER},
        "failing_checks": dict(failing.most_common()),
        "warning_checks": dict(warning.most_common()),
    }
