"""Power and cooling checks from the BMC's normalised Redfish telemetry (controller side).

Pure functions over `Telemetry`, so recorded payloads test them; the CLI gathers the
telemetry through `run_fleet`. The rack check adds up measured draw per rack: one node
looks fine alone while its rack is over the budget facilities gave it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from clusterctl.validate.expect import Expectation
from clusterctl.validate.rules import Ruleset
from clusterctl.verdict import CheckResult

if TYPE_CHECKING:
    from clusterctl.redfish.resources.telemetry import Telemetry

HEALTHY = (None, "OK")
PRESENT = (None, "Enabled", "StandbySpare")


def merge_telemetry(parts: Sequence[Telemetry]) -> Telemetry:
    """One view of a node whose BMC reports several chassis (the system, a GPU baseboard...)."""
    from clusterctl.redfish.resources.telemetry import Telemetry

    merged = Telemetry(chassis=",".join(p.chassis or "?" for p in parts))
    for part in parts:
        merged.psus.extend(part.psus)
        merged.fans.extend(part.fans)
        merged.temperatures.extend(part.temperatures)
        merged.inlet_c = merged.inlet_c if merged.inlet_c is not None else part.inlet_c
        merged.exhaust_c = merged.exhaust_c if merged.exhaust_c is not None else part.exhaust_c
        if part.power_watts is not None:
            # The enclosing chassis reports the whole node; sub-chassis report their share.
            merged.power_watts = max(merged.power_watts or 0.0, part.power_watts)
        merged.power_limit_watts = merged.power_limit_watts or part.power_limit_watts
    return merged


def power_checks(
    telemetry: Telemetry | None, expect: Expectation, rules: Ruleset, *, error: str | None = None
) -> list[CheckResult]:
    if telemetry is None:
        return [rules.judge("power.telemetry", True, f"no telemetry from the BMC: {error or 'unknown error'}")]
    return [
        rules.judge("power.telemetry", False, f"from chassis {telemetry.chassis}"),
        _psu_health(telemetry, rules),
        *_psu_redundancy(telemetry, expect, rules),
        _fan_health(telemetry, rules),
        _inlet(telemetry, rules),
        *_node_power(telemetry, expect, rules),
    ]


def _psu_health(t: Telemetry, rules: Ruleset) -> CheckResult:
    bad = [f"{p.name}: {p.health}" for p in t.psus if p.health not in HEALTHY and p.state != "Absent"]
    return rules.judge("power.psu_health", bool(bad), "; ".join(bad) or f"{len(t.psus)} PSUs OK")


def _psu_redundancy(t: Telemetry, expect: Expectation, rules: Ruleset) -> list[CheckResult]:
    if not expect.psus:
        return []
    good = [p for p in t.psus if p.health in HEALTHY and p.state in PRESENT]
    detail = f"{len(good)} of {expect.psus} PSUs healthy"
    return [rules.judge("power.psu_redundancy", len(good) < expect.psus, detail, data={"healthy": len(good)})]


def _fan_health(t: Telemetry, rules: Ruleset) -> CheckResult:
    bad = [f"{f.name}: {f.health}" for f in t.fans if f.health not in HEALTHY]
    return rules.judge("power.fan_health", bool(bad), "; ".join(bad) or f"{len(t.fans)} fans OK")


def _inlet(t: Telemetry, rules: Ruleset) -> CheckResult:
    if t.inlet_c is None:
        return rules.judge("power.inlet_temp", False, "the BMC reports no inlet temperature", status="warn")
    warn_c = rules.param("power.inlet_temp", "warn_c", 27)
    fail_c = rules.param("power.inlet_temp", "fail_c", 35)
    status = "fail" if t.inlet_c >= fail_c else "warn" if t.inlet_c >= warn_c else "pass"
    return rules.judge("power.inlet_temp", False, f"inlet {t.inlet_c:g} °C (warn at {warn_c}, fail at {fail_c})",
                       status=status, data={"inlet_c": t.inlet_c})


def _node_power(t: Telemetry, expect: Expectation, rules: Ruleset) -> list[CheckResult]:
    if not expect.max_power_w or t.power_watts is None:
        return []
    over = t.power_watts > expect.max_power_w
    return [rules.judge("power.node_power", over, f"{t.power_watts:.0f} W of max_power_w {expect.max_power_w} W",
                        data={"watts": t.power_watts})]


def rack_budget_checks(
    draw: Mapping[str, float | None],
    expectations: Iterable[Expectation],
    budgets: Mapping[str, int | None],
    rules: Ruleset,
) -> tuple[dict[str, CheckResult], dict[str, dict[str, Any]]]:
    """Per node, the check of its rack; and per rack, its measured total.

    Only nodes measured in this run count: a rack with unmeasured nodes gets a total marked
    partial, since the missing nodes draw power too.
    """
    racks: dict[str, list[str]] = {}
    for e in expectations:
        if e.rack is not None:
            racks.setdefault(e.rack, []).append(e.node)
    warn_fraction = rules.param("power.rack_budget", "warn_fraction", 0.9)
    per_node: dict[str, CheckResult] = {}
    summary: dict[str, dict[str, Any]] = {}
    for rack, nodes in racks.items():
        budget = budgets.get(rack)
        measured = [draw[n] for n in nodes if draw.get(n) is not None]
        if not budget or not measured:
            continue
        total = float(sum(m for m in measured if m is not None))
        partial = len(measured) < len(nodes)
        status = "fail" if total > budget else "warn" if total > budget * warn_fraction else "pass"
        note = f" ({len(measured)} of {len(nodes)} nodes measured)" if partial else ""
        detail = f"rack {rack}: {total:.0f} W of {budget} W budget{note}"
        check = rules.judge("power.rack_budget", False, detail, status=status,
                            data={"rack": rack, "watts": total, "budget_w": budget})
        summary[rack] = {"watts": total, "budget_w": budget, "status": status, "partial": partial}
        for node in nodes:
            per_node[node] = check
    return per_node, summary
