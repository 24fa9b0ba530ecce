"""From one node's agent report to its node-side checks, by category (gpu, fabric, software)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from clusterctl.validate.expect import Expectation
from clusterctl.validate.fabric import fabric_checks
from clusterctl.validate.gpu import gpu_checks
from clusterctl.validate.nvswitch import nvswitch_checks
from clusterctl.validate.rules import Ruleset
from clusterctl.validate.software import software_checks
from clusterctl.validate.xid import xid_checks
from clusterctl.verdict import CheckResult

CATEGORIES = ("gpu", "fabric", "software", "power")
NODE_SIDE = ("gpu", "fabric", "software")


def evaluate_report(
    report: Any, expect: Expectation, rules: Ruleset, categories: Collection[str] = NODE_SIDE
) -> list[CheckResult]:
    if not isinstance(report, dict) or "agent" not in report:
        return [CheckResult("agent", "fail", "the node's agent output is not a validation report", rule="agent",
                            remediation="Check python3 on the node and rerun with -vv.")]
    results: list[CheckResult] = []
    if "gpu" in categories:
        results += gpu_checks(report, expect, rules)
        if expect.gpu_count:
            results += nvswitch_checks(report, expect, rules)
            results += xid_checks(report, rules)
    if "fabric" in categories:
        results += fabric_checks(report, expect, rules)
    if "software" in categories:
        results += software_checks(report, expect, rules)
    return results
