"""Validate a fleet: ship the agent to every node over SSH, judge its report and the BMC's telemetry,
and record what was found. Used by `clusterctl validate`; tests and the lab call it directly.

Every node ends with a verdict: an unreachable node or a broken agent is a failed check of
that node with a hint, never an exception that stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterctl.ssh import SSHOutcome, SSHPool, SSHTarget, run_many
from clusterctl.validate.evaluate import NODE_SIDE, evaluate_report
from clusterctl.validate.expect import Expectation
from clusterctl.validate.power import power_checks, rack_budget_checks
from clusterctl.validate.rules import Ruleset
from clusterctl.validate.verdict import CheckResult, NodeVerdict, summarize

if TYPE_CHECKING:
    from clusterctl.redfish.resources.telemetry import Telemetry
    from clusterctl.state.store import Store

STAGE = "validate"
SSH_HINTS = {
    "SSHHostKeyError": "Verify the node's host key out of band (ssh-keyscan, console) and update known_hosts.",
    "SSHAuthFailed": "Install the inventory's SSH public key for the user on the node.",
    "SSHUnreachable": "Check that the node is powered on, on the network, and running sshd.",
    "SSHCommandTimeout": "The agent hung: look for a stuck driver (nvidia-smi hanging) in the kernel log.",
    "SSHCommandFailed": "Check python3 on the node; rerun with -vv to see the agent's stderr.",
    "SSHBadOutput": "Check python3 on the node; rerun with -vv to see the agent's output.",
}


@dataclass(frozen=True)
class AgentCall:
    """How to start the agent on one node: extra arguments and environment (the lab and tests point
    it at simulated hardware this way; real nodes need neither)."""

    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class FleetReport:
    verdicts: list[NodeVerdict]
    racks: dict[str, dict[str, Any]] = field(default_factory=dict)
    rulesets: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        return {**summarize(self.verdicts), "racks": self.racks, "rulesets": self.rulesets}

    @property
    def failed(self) -> bool:
        return any(v.status == "fail" for v in self.verdicts)

    def as_dict(self) -> dict[str, Any]:
        return {"nodes": [v.as_dict() for v in self.verdicts], "summary": self.summary}


@cache
def agent_source() -> str:
    return (Path(__file__).with_name("agent.py")).read_text(encoding="utf-8")


def collect_reports(
    targets: Sequence[SSHTarget],
    pool: SSHPool,
    *,
    agent_call: Callable[[str], AgentCall] | None = None,
    max_parallel: int = 32,
    timeout: float | None = None,
    on_done: Callable[[SSHOutcome[Any]], None] | None = None,
) -> dict[str, SSHOutcome[Any]]:
    """The agent's JSON report from every target (or that node's SSH error)."""
    program = agent_source()

    def one(target: SSHTarget) -> Any:
        call = agent_call(target.name) if agent_call else AgentCall()
        return pool.run_json(target, program, list(call.args), env=dict(call.env) or None, timeout=timeout)

    outcomes = run_many(targets, one, max_parallel=max_parallel, on_done=on_done)
    return {o.node: o for o in outcomes}


def judge(
    nodes: Sequence[Expectation],
    rulesets: Mapping[str | None, Ruleset],
    *,
    categories: Collection[str],
    reports: Mapping[str, SSHOutcome[Any]] | None = None,
    telemetry: Mapping[str, tuple[Telemetry | None, str | None]] | None = None,
    rack_budgets: Mapping[str, int | None] | None = None,
) -> FleetReport:
    """Pure: verdicts from what was collected. A node missing from `reports` or `telemetry` fails."""
    verdicts = []
    draw: dict[str, float | None] = {}
    for expect in nodes:
        rules = rulesets[expect.gpu_model]
        checks: list[CheckResult] = []
        if reports is not None and set(categories) & set(NODE_SIDE):
            outcome = reports.get(expect.node)
            if outcome is None or not outcome.ok:
                checks.append(_ssh_failure(outcome))
            else:
                checks += evaluate_report(outcome.value, expect, rules, categories)
        if telemetry is not None and "power" in categories:
            found, error = telemetry.get(expect.node, (None, "no BMC target for this node"))
            checks += power_checks(found, expect, rules, error=error)
            draw[expect.node] = found.power_watts if found is not None else None
        verdicts.append(NodeVerdict(expect.node, checks))
    racks: dict[str, dict[str, Any]] = {}
    if telemetry is not None and "power" in categories and rack_budgets:
        any_rules = next(iter(rulesets.values()))
        per_node, racks = rack_budget_checks(draw, nodes, rack_budgets, any_rules)
        for verdict in verdicts:
            if verdict.node in per_node:
                verdict.checks.append(per_node[verdict.node])
    used = {r.model or "base": {"version": r.version, "sources": list(r.sources)} for r in rulesets.values()}
    return FleetReport(verdicts, racks, used)


def _ssh_failure(outcome: SSHOutcome[Any] | None) -> CheckResult:
    if outcome is None:
        return CheckResult("ssh", "fail", "the node was not contacted", rule="ssh")
    kind = outcome.error_type or "SSHError"
    name = "agent" if kind in ("SSHCommandFailed", "SSHBadOutput") else "ssh"
    return CheckResult(name, "fail", outcome.error or kind, rule=f"{name}.{kind}",
                       remediation=SSH_HINTS.get(kind, "Check SSH access to the node; rerun with -vv."))


def record(store: Store, report: FleetReport, *, inventory: str | None, args: Any) -> int:
    """One run of kind "validate": every check, the node's validate stage, and one event per node.

    Written in bulk (one statement per table, nodes with the same outcome share one stage write):
    a 2,000-node fleet is tens of thousands of checks, and one statement per row made the store
    the controller's biggest cost after SSH.
    """
    from clusterctl.state.records import NewCheck, NewEvent

    run_id = store.start_run("validate", inventory=inventory, args=args)
    checks = [
        NewCheck(verdict.node, check.name, check.status, check.detail,
                 {"rule": check.rule, "remediation": check.remediation, "data": check.data})
        for verdict in report.verdicts for check in verdict.checks
    ]
    stages: dict[tuple[str, str | None, str], list[str]] = {}
    events = []
    for verdict in report.verdicts:
        problems = verdict.problems()
        reason = "; ".join(f"{c.name}: {c.detail}" for c in problems[:3]) or None
        outcome = "failed" if verdict.status == "fail" else "done"
        stages.setdefault((outcome, reason, verdict.status), []).append(verdict.node)
        events.append(NewEvent(f"validate.{verdict.status}", verdict.node, STAGE,
                               {"problems": [c.as_dict() for c in problems]} if problems else None))
    with store.transaction() as tx:
        tx.record_checks(checks, run_id=run_id)
        for (outcome, reason, status), nodes in stages.items():
            tx.set_stages(nodes, STAGE, outcome, run_id=run_id, reason=reason, detail={"status": status})
        tx.record_events(events, run_id=run_id)
    summary = {k: v for k, v in report.summary.items() if k in ("nodes", "pass", "warn", "fail")}
    store.finish_run(run_id, "failed" if report.failed else "succeeded", summary)
    return run_id
