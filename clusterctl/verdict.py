"""A node's verdict, whichever command judged it: validate, burn-in and periodic checks share it.

Failures are data: every finding names the check that raised it, the rule that judged it and the
hint an operator acts on, so the table, the JSON output and the store all carry the same reasons,
and a node judged by two commands reads the same way in both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

# "incomplete": burn-in could not judge the node because another node stopped the job first;
# worse than a warning (the node is not passed) but not at fault (never quarantined).
ORDER = {"pass": 0, "warn": 1, "incomplete": 2, "fail": 3}
SUMMARY_STATUSES = ("pass", "warn", "fail")


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
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        """What did not pass, in the order it was found."""
        return [c.detail for c in self.checks if c.status != "pass"]

    def add(self, status: str, check: str, detail: str, remediation: str | None = None) -> None:
        """A finding of `check`; the same finding twice (one per rank of a node, say) counts once."""
        if not any(c.name == check and c.detail == detail for c in self.checks):
            self.checks.append(CheckResult(check, status, detail, rule=check, remediation=remediation))

    def fail(self, check: str, detail: str, remediation: str | None = None) -> None:
        self.add("fail", check, detail, remediation)

    def downgrade(self, status: str) -> None:
        """Its failures stand as `status`: for a node only stopped by another node's failure."""
        self.checks = [replace(c, status=status) if c.status == "fail" else c for c in self.checks]

    def problems(self) -> list[CheckResult]:
        """Failing checks first, then the rest that did not pass."""
        bad = [c for c in self.checks if c.status != "pass"]
        return sorted(bad, key=lambda c: -ORDER[c.status])

    def findings(self) -> list[dict[str, Any]]:
        """What did not pass, each with the check that raised it and the remediation: what is stored."""
        return [{"check": c.name, "status": c.status, "detail": c.detail, "remediation": c.remediation}
                for c in self.checks if c.status != "pass"]

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "status": self.status, "reasons": self.reasons,
                "checks": [c.as_dict() for c in self.checks], "metrics": self.metrics}


def summarize(verdicts: Sequence[NodeVerdict]) -> dict[str, Any]:
    statuses = Counter(v.status for v in verdicts)
    failing = Counter(c.name for v in verdicts for c in v.checks if c.status == "fail")
    warning = Counter(c.name for v in verdicts for c in v.checks if c.status == "warn")
    counts = {s: statuses.get(s, 0) for s in SUMMARY_STATUSES}
    return {
        "nodes": len(verdicts),
        **counts,
        **{s: n for s, n in statuses.items() if s not in counts},
        "failing_checks": dict(failing.most_common()),
        "warning_checks": dict(warning.most_common()),
    }
