"""One periodic check round: validate's collection and rules (clusterctl/validate/run.py), then every
figure stored per node, judged against the node's peers and its own history, early-warning scores,
and the round recorded as one run of kind "check".

The round's instant is the nodes' clock (the median of what their agents report): on a real fleet
that is the controller's time give or take NTP, and on the lab it is the simulated day the nodes
live in, so trends per day mean the same on both.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterctl.check import history as stored
from clusterctl.check.figures import METRICS, Figure, bandwidth_figures, node_figures
from clusterctl.check.judge import DAY_S, Finding, Policy, against_history, against_peers
from clusterctl.check.risk import Risk, node_risk, worst_first
from clusterctl.verdict import CheckResult, NodeVerdict, summarize

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory, Node
    from clusterctl.redfish import BMCTarget
    from clusterctl.state.store import Store
    from clusterctl.validate.run import FleetReport, Phase, Request

STAGE = "check"
JUDGED = sorted(m.name for m in METRICS.values() if m.kind != "info")
"""The metrics whose history a round reads: the others are only stored."""
SUITES = ("quick", "standard")
"""quick: validate's checks and BMC telemetry. standard: and all-reduce between ring-neighbour pairs and one
ring per rack (validate's bandwidth check). The short burn-in of standard, and deep, are not built yet."""


@dataclass
class RoundResult:
    run_id: int
    ts: float
    verdicts: list[NodeVerdict]
    figures: dict[str, dict[str, Figure]]
    findings: list[Finding]
    risks: list[Risk]
    drained: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per part: collect (validate's), judge (history read and judging), record."""

    @property
    def regressed(self) -> set[str]:
        return {f.node for f in self.findings}

    @property
    def failed(self) -> bool:
        return any(v.status == "fail" for v in self.verdicts) or bool(self.findings)

    def as_dict(self, top: int = 20) -> dict[str, Any]:
        return {
            "run": self.run_id, "ts": self.ts,
            "summary": {**summarize(self.verdicts), "regressions": len(self.findings),
                        "regressed_nodes": len(self.regressed)},
            "regressions": [f.as_dict() for f in sorted(self.findings, key=lambda f: (f.node, f.metric))],
            "early_warning": [r.as_dict() for r in worst_first(self.risks, top)],
            "nodes": [v.as_dict() for v in self.verdicts],
            "drained": self.drained,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def round_time(report: FleetReport) -> float:
    clocks = [o.value["time"] for o in (report.reports or {}).values()
              if o.ok and isinstance(o.value, dict) and isinstance(o.value.get("time"), int | float)]
    return float(statistics.median(clocks)) if clocks else time.time()


def collect_figures(report: FleetReport) -> dict[str, dict[str, Figure]]:
    out: dict[str, dict[str, Figure]] = {}
    for verdict in report.verdicts:
        outcome = (report.reports or {}).get(verdict.node)
        agent = outcome.value if outcome is not None and outcome.ok else None
        bmc = (report.telemetry or {}).get(verdict.node, (None, None))[0]
        out[verdict.node] = {f.metric: f for f in node_figures(verdict.node, agent, bmc)}
    if report.bandwidth is not None:
        for node, fig in bandwidth_figures(report.bandwidth).items():
            out.setdefault(node, {})[fig.metric] = fig
    return out


def judge_round(figures: Mapping[str, Mapping[str, Figure]], ts: float, models: Mapping[str, str | None],
                past: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], policy: Policy
                ) -> tuple[list[Finding], list[Risk]]:
    """Pure: this round's findings against peers and history, and every node's early-warning score."""
    found = against_peers(figures, models, policy)
    risks = []
    for node, figs in figures.items():
        mine = past.get(node, {})
        for fig in figs.values():
            finding = against_history(fig, ts, mine.get(fig.metric, ()), policy)
            if finding is not None:
                found.append(finding)
        risks.append(node_risk(node, figs, ts, mine, policy))
    return found, risks


def run_round(store: Store, inventory: Inventory, nodes: Sequence[Node], request: Request, policy: Policy, *,
              bmc_targets: Sequence[BMCTarget] | None, inventory_path: str | None, args: Any,
              phase: Phase | None = None) -> RoundResult:
    from clusterctl.validate.run import validate_nodes

    kwargs = {"phase": phase} if phase is not None else {}
    clock = [time.monotonic()]
    report = validate_nodes(inventory, nodes, request, bmc_targets=bmc_targets, **kwargs)
    clock.append(time.monotonic())
    ts = round_time(report)
    figures = collect_figures(report)
    lookback = max(policy.window_days, policy.rate_days * 2) * DAY_S
    past = stored.history(store, [n.name for n in nodes], ts - lookback, ts, JUDGED)
    models = {n.name: n.hardware.gpu.model if n.hardware.gpu else None for n in nodes}
    findings, risks = judge_round(figures, ts, models, past, policy)
    for finding in findings:
        verdict = next(v for v in report.verdicts if v.node == finding.node)
        verdict.checks.append(CheckResult(f"{finding.judge}.{finding.metric}", "warn", finding.detail,
                                          rule=f"check.{finding.judge}", remediation=finding.remediation,
                                          data={"change": finding.value, "since": finding.since}))
    clock.append(time.monotonic())
    run_id = record(store, report.verdicts, ts, figures, findings, risks, inventory=inventory_path,
                    args={**(args or {}), "policy": policy.as_dict()})
    clock.append(time.monotonic())
    seconds = dict(zip(("collect", "judge", "record"), (b - a for a, b in zip(clock, clock[1:], strict=False)),
                       strict=True))
    return RoundResult(run_id, ts, report.verdicts, figures, findings, risks, seconds=seconds)


def record(store: Store, verdicts: Sequence[NodeVerdict], ts: float, figures: Mapping[str, Mapping[str, Figure]],
           findings: Sequence[Finding], risks: Sequence[Risk], *, inventory: str | None, args: Any) -> int:
    """One run of kind "check": validate's check rows, every figure, the findings, each node's check stage."""
    from clusterctl.state.records import NewEvent
    from clusterctl.validate.run import check_rows

    run_id = store.start_run("check", inventory=inventory, args=args)
    stages: dict[tuple[str, str | None], list[str]] = {}
    events = []
    for verdict in verdicts:
        problems = verdict.problems()
        reason = "; ".join(f"{c.name}: {c.detail}" for c in problems[:3]) or None
        stages.setdefault(("failed" if verdict.status == "fail" else "done", reason), []).append(verdict.node)
        if problems:
            events.append(NewEvent(f"check.{verdict.status}", verdict.node, STAGE,
                                   {"problems": [c.as_dict() for c in problems]}))
    with store.transaction() as tx:
        tx.record_checks(check_rows(verdicts), run_id=run_id)
        for (outcome, reason), names in stages.items():
            tx.set_stages(names, STAGE, outcome, run_id=run_id, reason=reason)
        tx.record_events(events, run_id=run_id)
    stored.write_round(store, run_id, ts, [f for figs in figures.values() for f in figs.values()], findings, risks)
    counts = summarize(list(verdicts))
    summary = {**{k: counts[k] for k in ("nodes", "pass", "warn", "fail")}, "regressions": len(findings),
               "round_ts": ts}
    failed = counts["fail"] > 0 or bool(findings)
    store.finish_run(run_id, "failed" if failed else "succeeded", summary)
    return run_id


def drain(store: Store, result: RoundResult, on: str, via: str, *, slurm_conf: str | None = None,
          kubeconfig: str | None = None, context: str | None = None) -> list[dict[str, Any]]:
    """`--drain-on fail|regression`: hand those nodes to burn-in's quarantine, which owns draining."""
    from clusterctl.burnin import quarantine as quarantine_mod

    reasons: dict[str, list[str]] = {}
    for v in result.verdicts:
        if v.status == "fail":
            reasons.setdefault(v.node, []).extend(f"{c.name}: {c.detail}" for c in v.problems() if c.status == "fail")
    if on == "regression":
        for f in result.findings:
            reasons.setdefault(f.node, []).append(f"check {f.judge}: {f.detail}")
    if not reasons:
        return []
    reach = quarantine_mod.Schedulers(slurm_conf=slurm_conf, kubeconfig=kubeconfig, context=context)
    actions = quarantine_mod.quarantine(reasons, via=via, store=store, source="check", schedulers=reach,
                                        run_id=result.run_id)
    result.drained = [a.as_dict() for a in actions]
    return result.drained
