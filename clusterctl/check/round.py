"""One periodic check round: validate's collection and rules (clusterctl/validate/run.py), then every
figure stored per node, judged against the node's peers and its own history, early-warning scores,
and the round recorded as one run of kind "check".

A round is a controller of the store (state/node_leases.py, job "check"): it leases its nodes in one
transaction before touching them and gives them all back at the end, without marking them done (a check
repeats; the next round or a provision takes the nodes as before). A node another live controller holds
(a provision or a maintain working on it, another round) is not checked: it is reported skipped with its
holder, never judged, and no figure of it is stored for the round.

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
from clusterctl.check.figures import METRICS, Figure, bandwidth_figures, node_figures, ring_figures
from clusterctl.check.judge import DAY_S, Finding, Policy, against_history, against_peers
from clusterctl.check.risk import Risk, node_risk, worst_first
from clusterctl.state import node_leases
from clusterctl.verdict import CheckResult, NodeVerdict, summarize

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory, Node
    from clusterctl.redfish import BMCTarget
    from clusterctl.state.store import Store
    from clusterctl.validate.run import FleetReport, Phase, Request

STAGE = "check"
JUDGED = sorted(m.name for m in METRICS.values() if m.kind != "info")
"""The metrics whose history a round reads: the others are only stored."""
SUITES = ("quick", "standard", "deep")
"""quick: validate's checks and BMC telemetry. standard: and all-reduce between ring-neighbour pairs and one
ring per rack (validate's bandwidth check), and a short single-node burn-in. deep: one ring across every rack
instead, a longer burn-in, and DCGM diagnostics level 3 where dcgmi exists."""
BURNIN_MINUTES = {"quick": 0.0, "standard": 3.0, "deep": 15.0}
"""Within the issue's budgets per node: standard 5 minutes, deep 30 (DCGM level 3 takes 10-15 of them)."""


@dataclass(frozen=True)
class Suite:
    """What a round runs beyond validate's collection (which `Request` holds)."""

    name: str = "quick"
    burnin_minutes: float = 0.0
    burnin_model: str = "transformer-big"
    dcgm: bool = False

    @classmethod
    def named(cls, name: str, *, burnin_minutes: float | None = None, burnin_model: str = "transformer-big"
              ) -> Suite:
        minutes = BURNIN_MINUTES[name] if burnin_minutes is None else burnin_minutes
        return cls(name, minutes if name != "quick" else 0.0, burnin_model, dcgm=name == "deep")

    @property
    def ring(self) -> str:
        return {"quick": "none", "standard": "rack", "deep": "all"}[self.name]


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
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Nodes not checked because another live controller held them: node -> its holder (job, host, pid, run)."""

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
            "skipped": {node: node_leases.describe(h) for node, h in sorted(self.held.items())},
            "held_by": dict(sorted(self.held.items())),
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
        for node, fig in [*bandwidth_figures(report.bandwidth).items(), *ring_figures(report.bandwidth).items()]:
            out.setdefault(node, {})[fig.metric] = fig
    return out


def reached(report: FleetReport) -> list[str]:
    """The nodes whose agent answered: only they are worth a burn-in or diagnostics."""
    return [v.node for v in report.verdicts
            if (o := (report.reports or {}).get(v.node)) is not None and o.ok]


def node_side_suite(inventory: Inventory, report: FleetReport, figures: dict[str, dict[str, Figure]],
                    suite: Suite, request: Request, clock: list[float]) -> None:
    """standard and deep: each reached node's burn-in, then (deep) its DCGM diagnostics, merged into its verdict
    and figures. In that order: both load the GPUs, and a burn-in's figures must not include the other's load."""
    from clusterctl.burnin.verdict import CHECKS
    from clusterctl.check import dcgm
    from clusterctl.check.burnin import BurninPlan, burn_in_nodes, burnin_figures

    names = reached(report)
    by_node = {v.node: v for v in report.verdicts}
    if suite.burnin_minutes > 0:
        plan = BurninPlan(suite.burnin_minutes * 60, suite.burnin_model, request.parallel, request.connect_timeout)
        burns = burn_in_nodes(inventory, names, plan)
        for node, figs in burnin_figures(burns).items():
            figures.setdefault(node, {}).update({f.metric: f for f in figs})
        for node, burn in burns.items():
            _merge(by_node[node], burn, CHECKS, "burnin")
        clock.append(time.monotonic())
    if suite.dcgm:
        for node, diag in dcgm.diagnose_nodes(inventory, names, parallel=request.parallel,
                                              connect_timeout=request.connect_timeout).items():
            _merge(by_node[node], diag, () if "dcgm" in diag.metrics and isinstance(diag.metrics["dcgm"], str)
                   else (dcgm.CHECK,), "dcgm")
        clock.append(time.monotonic())


def _merge(verdict: NodeVerdict, other: NodeVerdict, checks: Sequence[str], key: str) -> None:
    """Another judge's checks into the node's verdict; a check it ran and found nothing in is a pass, so the
    node's page shows its latest word and a pass clears an earlier failure."""
    verdict.checks.extend(other.checks)
    verdict.checks.extend(CheckResult(name, "pass", "", rule=name) for name in checks
                          if not any(c.name == name for c in other.checks))
    if other.metrics:
        verdict.metrics[key] = other.metrics.get(key, other.metrics)


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
              phase: Phase | None = None, suite: Suite = Suite()) -> RoundResult:
    """Lease the nodes, check those no other controller holds, record the round, give the nodes back."""
    args = {**(args or {}), "policy": policy.as_dict()}
    controller = node_leases.start(store, "check", command=f"check {inventory_path or ''}".strip(),
                                   inventory=inventory_path, args=args)
    assert controller.run_id is not None
    try:
        with store.transaction() as tx:
            held = controller.claim_or_holders(tx, [n.name for n in nodes])
        mine = [n for n in nodes if n.name not in held]
        if bmc_targets is not None:
            bmc_targets = [t for t in bmc_targets if t.name not in held]
        result = _checked(store, inventory, mine, request, policy, bmc_targets=bmc_targets, phase=phase,
                          suite=suite, run_id=controller.run_id, held=held)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.finish_run(controller.run_id, status, {"error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        controller.close()  # every lease of the round goes with it, unmarked
    return result


def _checked(store: Store, inventory: Inventory, nodes: Sequence[Node], request: Request, policy: Policy, *,
             bmc_targets: Sequence[BMCTarget] | None, phase: Phase | None, suite: Suite, run_id: int,
             held: dict[str, dict[str, Any]]) -> RoundResult:
    from clusterctl.validate.run import validate_nodes

    if not nodes:  # every node held elsewhere: nothing to collect or judge
        store.finish_run(run_id, "succeeded", {"nodes": 0, "pass": 0, "warn": 0, "fail": 0, "regressions": 0,
                                               "skipped": len(held)})
        return RoundResult(run_id, time.time(), [], {}, [], [], held=held)
    kwargs = {"phase": phase} if phase is not None else {}
    clock = [time.monotonic()]
    report = validate_nodes(inventory, nodes, request, bmc_targets=bmc_targets, **kwargs)
    clock.append(time.monotonic())
    parts = ["collect"]
    ts = round_time(report)
    figures = collect_figures(report)
    if suite.burnin_minutes > 0 or suite.dcgm:
        node_side_suite(inventory, report, figures, suite, request, clock)
        parts += ["burnin"] * (suite.burnin_minutes > 0) + ["dcgm"] * suite.dcgm
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
    record(store, report.verdicts, ts, figures, findings, risks, inventory=None, args=None, models=models,
           run_id=run_id, skipped=len(held))
    clock.append(time.monotonic())
    seconds = dict(zip([*parts, "judge", "record"], (b - a for a, b in zip(clock, clock[1:], strict=False)),
                       strict=True))
    return RoundResult(run_id, ts, report.verdicts, figures, findings, risks, seconds=seconds, held=held)


def record(store: Store, verdicts: Sequence[NodeVerdict], ts: float, figures: Mapping[str, Mapping[str, Figure]],
           findings: Sequence[Finding], risks: Sequence[Risk], *, inventory: str | None, args: Any,
           models: Mapping[str, str | None] | None = None, run_id: int | None = None, skipped: int = 0) -> int:
    """One run of kind "check": validate's check rows, every figure, the findings, each node's check stage, and
    the peers' bands per GPU model (`models`, by node) the dashboard draws. `run_id`: the round's run, started
    when its controller registered (else one is started here)."""
    from clusterctl.state.records import NewEvent
    from clusterctl.validate.run import check_rows

    if run_id is None:
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
    stored.write_round(store, run_id, ts, [f for figs in figures.values() for f in figs.values()], findings, risks,
                       models)
    counts = summarize(list(verdicts))
    summary = {**{k: counts[k] for k in ("nodes", "pass", "warn", "fail")}, "regressions": len(findings),
               "round_ts": ts, **({"skipped": skipped} if skipped else {})}
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
