"""Software versions the agent found, against the inventory's `software` section.

A version matches when it equals the inventory's or extends it at a separator: the inventory
may pin "12.4" and the node report "12.4.1", but "12.40" is a different release.
"""

from __future__ import annotations

from typing import Any

from clusterctl.validate.expect import SOFTWARE, Expectation
from clusterctl.validate.rules import Ruleset
from clusterctl.verdict import CheckResult


def version_matches(actual: str, expected: str) -> bool:
    actual, expected = actual.strip(), expected.strip()
    return actual == expected or any(actual.startswith(expected + sep) for sep in ".-")


def software_checks(report: dict[str, Any], expect: Expectation, rules: Ruleset) -> list[CheckResult]:
    found = report.get("software")
    found = found if isinstance(found, dict) and not found.get("error") else {}
    results = []
    for component in SOFTWARE:
        expected = expect.software.get(component)
        if not expected:
            continue
        actual = found.get(component)
        if actual is None:
            results.append(rules.judge(f"software.{component}", True, f"not found (expected {expected})"))
        else:
            ok = version_matches(str(actual), expected)
            detail = str(actual) if ok else f"{actual}, expected {expected}"
            results.append(rules.judge(f"software.{component}", not ok, detail))
    return results
