"""Validate a fleet: ship the agent to every node over SSH, read the BMCs' telemetry, measure
all-reduce bandwidth, judge, record, quarantine. `clusterctl validate` runs all of it; the
provision `validate` stage runs `validate_nodes` for one node and records through its journal.

Every node ends with a verdict: an unreachable node or a broken agent is a failed check of
that node with a hint, never an exception that stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterctl.errors import SelectionError
from clusterctl.ssh import SSHPool, SSHTarget, run_many
from clusterctl.validate.evaluate import NODE_SIDE, evaluate_report
from clusterctl.validate.expect import Expectation
from clusterctl.validate.power import power_checks, rack_budget_checks
from clusterctl.validate.rules import Ruleset
from clusterctl.verdict import CheckResult, NodeVerdict, summarize

if TYPE_CHECKING:
    from clusterctl.fanout import TargetResult
    from clusterctl.inventory import Inventory, Node
    from clusterctl.redfish import BMCTarget
    from clusterctl.redfish.resources.telemetry import Telemetry
    from clusterctl.state.records import NewCheck
    from clusterctl.state.store import Store
    from clusterctl.validate.bandwidth import BandwidthRun, BenchOptions

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
    bandwidth: BandwidthRun | None = None
    """The all-reduce rounds measured, when bandwidth was checked (each node's checks are in its verdict)."""
    reports: Mapping[str, TargetResult[Any]] | None = None
    """What each node's agent reported (or its SSH error): periodic checks keep the figures in it."""
    telemetry: Mapping[str, tuple[Telemetry | None, str | None]] | None = None
    """Each node's BMC telemetry (or the BMC's error), when power was checked."""

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


Advance = Callable[[], None]
Phase = Callable[[str, int], AbstractContextManager[Advance]]
"""Opens one phase of the run (its label, its number of steps) and yields the call that counts a step;
the CLI draws a progress bar with it. Steps are counted from worker threads."""


@contextmanager
def quiet(label: str, total: int) -> Iterator[Advance]:
    yield lambda: None


@dataclass(frozen=True)
class Request:
    """What `validate_nodes` checks and how hard it may push the fleet and the controller."""

    categories: Collection[str]
    """gpu, fabric, software (the agent over SSH), power (the BMCs), bandwidth (all-reduce over SSH)."""
    rules: Path | None = None
    """A site rules file applied over the built-in ruleset of each GPU model."""
    parallel: int = 32
    connect_timeout: float = 10.0
    timeout: float = 300.0
    """Seconds the agent may run on a node."""
    agent_call: Callable[[str], AgentCall] | None = None
    ring: str = "none"
    bandwidth_nproc: int | None = None
    bandwidth_python: str | None = None
    bandwidth_workdir: str | None = None


def validate_nodes(
    inventory: Inventory,
    nodes: Sequence[Node],
    request: Request,
    *,
    bmc_targets: Sequence[BMCTarget] | None = None,
    phase: Phase = quiet,
) -> FleetReport:
    """Every node's verdict: the agent over SSH while one thread reads the BMCs' telemetry, then the
    all-reduce rounds (they load the GPUs the agent reads), then judging. `bmc_targets` are needed
    for the power checks."""
    from clusterctl.ssh import SSHPool, target_from_node
    from clusterctl.validate.rules import load_ruleset

    wanted = set(request.categories)
    if "power" in wanted and bmc_targets is None:
        raise ValueError("the power checks need the nodes' BMC targets")
    expectations = [Expectation.from_node(n) for n in nodes]
    rulesets = {model: load_ruleset(model, request.rules) for model in {e.gpu_model for e in expectations}}
    node_side = bool(wanted & set(NODE_SIDE))
    ssh_targets = [target_from_node(n, inventory) for n in nodes] if node_side or "bandwidth" in wanted else []
    bmcs = list(bmc_targets or []) if "power" in wanted else None
    bench = _bench_options(request, rulesets, expectations) if "bandwidth" in wanted else None

    with phase("validate", len(nodes) * (node_side + (bmcs is not None))) as advance, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="telemetry") as background:
        power = background.submit(_telemetry, bmcs, request.parallel, advance) if bmcs is not None else None
        reports = None
        if node_side:
            pool = SSHPool(max_sessions=request.parallel, connect_timeout=request.connect_timeout,
                           command_timeout=request.timeout)
            reports = collect_reports(ssh_targets, pool, agent_call=request.agent_call,
                                      max_parallel=request.parallel, on_done=lambda _o: advance())
        telemetry = power.result() if power is not None else None
    bandwidth = _bandwidth(phase, bench, ssh_targets, expectations, rulesets, request) if bench else None
    report = judge(expectations, rulesets, categories=wanted, reports=reports, telemetry=telemetry,
                   rack_budgets={name: rack.power_budget_w for name, rack in inventory.racks.items()})
    report.reports, report.telemetry = reports, telemetry
    if bandwidth is not None:
        report.bandwidth, checks = bandwidth
        for verdict in report.verdicts:
            verdict.checks.extend(checks.get(verdict.node, []))
    return report


def _bench_options(request: Request, rulesets: Mapping[str | None, Ruleset],
                   expectations: Sequence[Expectation]) -> BenchOptions:
    import sys

    from clusterctl.validate.bandwidth import WORKLOAD_ROOT, BenchOptions

    gpus = min((e.gpu_count for e in expectations), default=0)
    # Sizes and time limits are the first node's model's: one job must run one command on all its nodes.
    rules = rulesets[expectations[0].gpu_model] if expectations else next(iter(rulesets.values()))
    return BenchOptions.from_rules(rules, python=request.bandwidth_python or sys.executable,
                                   workdir=request.bandwidth_workdir or str(WORKLOAD_ROOT),
                                   nproc=request.bandwidth_nproc or max(1, gpus),
                                   connect_timeout=request.connect_timeout)


def _bandwidth(phase: Phase, bench: BenchOptions, targets: Sequence[SSHTarget], expectations: Sequence[Expectation],
               rulesets: Mapping[str | None, Ruleset], request: Request
               ) -> tuple[BandwidthRun, dict[str, list[CheckResult]]]:
    """Pair rounds (and rings) over SSH, then each node's bandwidth checks."""
    from clusterctl.validate.bandwidth import bandwidth_checks, measure_bandwidth, plan_pairs, ring_groups

    names = [e.node for e in expectations]
    rings = ring_groups(expectations, request.ring)
    jobs = sum(len(r) for r in plan_pairs(names)) + len(rings)
    with phase("bandwidth", jobs) as advance:
        run = measure_bandwidth(names, {t.name: t for t in targets}, bench, rings=rings,
                                max_parallel=request.parallel, on_done=lambda _m: advance())
    return run, bandwidth_checks(run, {e.node: e for e in expectations}, rulesets, nproc=bench.nproc)


def _telemetry(targets: list[BMCTarget], parallel: int, advance: Advance) -> Any:
    from clusterctl.validate.telemetry import gather_telemetry

    return gather_telemetry(targets, max_bmcs=parallel, on_done=lambda _r: advance())


def collect_reports(
    targets: Sequence[SSHTarget],
    pool: SSHPool,
    *,
    agent_call: Callable[[str], AgentCall] | None = None,
    max_parallel: int = 32,
    timeout: float | None = None,
    on_done: Callable[[TargetResult[Any]], None] | None = None,
) -> dict[str, TargetResult[Any]]:
    """The agent's JSON report from every target (or that node's SSH error)."""
    program = agent_source()

    def one(target: SSHTarget) -> Any:
        call = agent_call(target.name) if agent_call else AgentCall()
        return pool.run_json(target, program, list(call.args), env=dict(call.env) or None, timeout=timeout)

    outcomes = run_many(targets, one, max_parallel=max_parallel, on_done=on_done)
    return {o.target: o for o in outcomes}


def judge(
    nodes: Sequence[Expectation],
    rulesets: Mapping[str | None, Ruleset],
    *,
    categories: Collection[str],
    reports: Mapping[str, TargetResult[Any]] | None = None,
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


def _ssh_failure(outcome: TargetResult[Any] | None) -> CheckResult:
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
    from clusterctl.state.records import NewEvent

    run_id = store.start_run("validate", inventory=inventory, args=args)
    checks = check_rows(report.verdicts)
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


def check_rows(verdicts: Iterable[NodeVerdict]) -> list[NewCheck]:
    """The store's rows for these verdicts' checks, each with the rule that graded it and its remedy."""
    from clusterctl.state.records import NewCheck

    return [
        NewCheck(verdict.node, check.name, check.status, check.detail,
                 {"rule": check.rule, "remediation": check.remediation, "data": check.data})
        for verdict in verdicts for check in verdict.checks
    ]


def quarantine_via(nodes: Sequence[Node], given: str | None) -> str:
    """The scheduler that quarantines: as given, else the one the inventory names for these nodes."""
    if given:
        if given not in ("slurm", "kubernetes"):
            raise SelectionError(f"--quarantine-via {given!r}: choose slurm or kubernetes")
        return given
    if any(n.scheduler.slurm.partition for n in nodes):
        return "slurm"
    if any(n.scheduler.kubernetes.labels for n in nodes):
        return "kubernetes"
    raise SelectionError("--quarantine: the inventory names no scheduler for these nodes; add --quarantine-via "
                         "slurm or --quarantine-via kubernetes")


def quarantine_failed(store: Store, report: FleetReport, run_id: int, via: str, *, slurm_conf: Path | None = None,
                      kubeconfig: Path | None = None, context: str | None = None) -> list[dict[str, Any]]:
    """Hand the failed nodes to burn-in's quarantine (clusterctl.burnin.quarantine), which owns it."""
    from clusterctl.burnin import quarantine as quarantine_mod

    failing = {v.node: [f"{c.name}: {c.detail}" for c in v.problems() if c.status == "fail"]
               for v in report.verdicts if v.status == "fail"}
    if not failing:
        return []
    reach = quarantine_mod.Schedulers(slurm_conf=str(slurm_conf) if slurm_conf else None,
                                      kubeconfig=str(kubeconfig) if kubeconfig else None, context=context)
    actions = quarantine_mod.quarantine(failing, via=via, store=store, source="validate", schedulers=reach,
                                        run_id=run_id)
    return [a.as_dict() for a in actions]
