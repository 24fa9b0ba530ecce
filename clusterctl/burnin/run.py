"""One burn-in from start to verdict: launch, follow to the deadline, collect, judge, store.

The backend's own view of the job (exit codes, states) only explains; the verdict comes
from what each rank reported, so a rank that crashed or hung is named by the node it ran
on ("stopped reporting"), whichever backend ran it. Per-step figures go to the telemetry
table (metric `burnin.<field>`, labels run/rank/step) so the dashboard can plot them; the
per-node summary goes to the burn-in results.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterctl import log
from clusterctl.burnin import nccl_log
from clusterctl.burnin.launchers.protocol import BurninSpec, Launcher, Outcome
from clusterctl.burnin.verdict import (
    COMPLETION,
    LAUNCH,
    REMEDIATION,
    Rules,
    fail_check,
    hung_outside_collective,
    judge,
    judge_fabric,
)
from clusterctl.verdict import CheckResult, NodeVerdict

if TYPE_CHECKING:
    from clusterctl.state.store import Store

_log = log.get("burnin")
INCOMPLETE = "incomplete"
STOPPED_BY_OTHER = "burnin.stopped_by_other"
STEP_METRICS = ("loss", "local_tokens_per_s", "tokens_per_s", "step_time_s", "mfu", "grad_norm", "mem_bytes",
                "gpu_temp_c", "gpu_power_w", "gpu_sm_clock_mhz", "gpu_throttle_reasons")


@dataclass
class BurninReport:
    run_id: int | None
    launcher: str
    ref: str
    outcome: Outcome
    verdicts: list[NodeVerdict]
    records: int = 0
    files: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> dict[str, list[str]]:
        """Every node that failed or is incomplete: any of them makes the command exit 1. A warning
        does not: the node is fit to serve, and the finding is stored for the operator."""
        return {v.node: v.reasons for v in self.verdicts if v.status in ("fail", INCOMPLETE)}

    @property
    def to_quarantine(self) -> dict[str, list[str]]:
        """Only the nodes found at fault; an incomplete node was stopped by another's failure."""
        return {v.node: v.reasons for v in self.verdicts if v.status == "fail"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id, "launcher": self.launcher, "job": self.ref,
            "job_state": self.outcome.state, "job_exit_code": self.outcome.exit_code,
            "job_message": self.outcome.message, "records": self.records, "files": self.files,
            "nodes": [v.as_dict() for v in self.verdicts],
            "passed": sum(v.status == "pass" for v in self.verdicts),
            "warned": sum(v.status == "warn" for v in self.verdicts), "failed": len(self.failed),
        }


def parse_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The rank reports among any other output (srun prefixes, kubectl logs, torchrun chatter)."""
    records = []
    for line in lines:
        start = line.find('{"clusterctl"')
        if start < 0:
            continue
        try:
            rec = json.loads(line[start:])
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if isinstance(rec, dict) and rec.get("clusterctl") == "burnin/v1":
            records.append(rec)
    return records


def samples(records: Iterable[Mapping[str, Any]], run_id: int | None) -> list[Any]:
    from clusterctl.state.records import Sample

    found = []
    for rec in records:
        if rec.get("event") != "step":
            continue
        labels = {"run": run_id, "rank": rec.get("rank"), "step": rec.get("step")}
        for metric in STEP_METRICS:
            value = rec.get(metric)
            if isinstance(value, int | float):
                found.append(Sample(str(rec["node"]), f"burnin.{metric}", float(value), rec.get("time"), labels))
    return found


def execute(launcher: Launcher, spec: BurninSpec, *, expected_nodes: list[str], world_size: int,
            rules: Rules = Rules(), store: Store | None = None, run_id: int | None = None,
            rdma_nodes: Iterable[str] = ()) -> BurninReport:
    """Run the job to its end or its timeout and judge it; results land in `store` under `run_id`.
    `rdma_nodes` have InfiniBand in the inventory: NCCL must not have fallen back to sockets on them."""
    submission = launcher.submit(spec)
    _log.info("burn-in %s submitted through %s as %s", spec.run_id, launcher.name, submission.ref)
    if store is not None and run_id is not None:
        store.event("burnin.submitted", run_id=run_id,
                    payload={"launcher": launcher.name, "job": submission.ref, "nodes": expected_nodes})
    try:
        outcome = launcher.watch(submission, time.monotonic() + spec.timeout_s)
        if outcome.state == "timeout":
            _log.warning("burn-in %s passed its timeout of %ss; cancelling", spec.run_id, spec.timeout_s)
        # Collected before cancelling: cancelling may take the output with it (Kubernetes pods and their logs).
        lines = launcher.collect(submission)
        records = parse_records(lines)
    finally:
        # Cancelling a finished job is a no-op; an interrupted or timed-out one must not keep the nodes.
        launcher.cancel(submission)
    verdicts = judge(records, expected_nodes, world_size=world_size, rules=rules)
    judge_fabric(verdicts, nccl_log.transports(lines, records), rdma_nodes)
    blame_unstarted(verdicts, submission.detail.get("launch_errors") or {})
    blame(verdicts, records, outcome.root_causes)
    if outcome.state == "timeout":
        for verdict in verdicts:
            verdict.metrics["timed_out_after_s"] = spec.timeout_s
    report = BurninReport(run_id, launcher.name, submission.ref, outcome, verdicts, len(records),
                          {k: str(v) for k, v in submission.files.items()})
    if store is not None and run_id is not None:
        save(store, report, records)
    return report


def blame(verdicts: list[NodeVerdict], records: list[dict[str, Any]], root_causes: Mapping[int, int]) -> None:
    """Name the rank that failed or hung first, and stop blaming the nodes that were only stopped because of it.

    When one rank exits, torchrun and srun stop all the others, so every node "stopped
    reporting"; when one rank hangs, every other rank waits for it in a collective. A node whose
    only fault is that, beside a node whose rank failed first (torchrun's root cause) or hung
    outside a collective (its `stall` report), is `incomplete`: not passed, not to be quarantined.
    """
    node_of = {int(r["rank"]): str(r["node"]) for r in records if r.get("event") == "start"}
    culprits: dict[str, list[str]] = {}
    for rank, code in sorted(root_causes.items()):
        if rank in node_of:
            culprits.setdefault(node_of[rank], []).append(
                f"rank {rank} exited with status {code}, the first failure of the job")
    for rec in records:
        if rec.get("event") == "stall" and hung_outside_collective(rec):
            culprits.setdefault(str(rec["node"]), [])  # judge() already gave the reason
    if not culprits:
        return
    shown = _shown(culprits)
    for verdict in verdicts:
        if verdict.node in culprits:
            for reason in culprits[verdict.node]:
                fail_check(verdict, COMPLETION, reason)
        elif _only_stopped(verdict):
            _incomplete(verdict, f"stopped because {shown} failed first; burn in again to judge this node")


def burn_in(store: Store, launcher: Launcher, spec: BurninSpec, *, expected_nodes: list[str], world_size: int,
            rules: Rules = Rules(), inventory: str | None = None, quarantine_via: str | None = None,
            schedulers: Any = None, announce: Callable[[str], None] = _log.info,
            rdma_nodes: Iterable[str] = ()) -> tuple[BurninReport, list[Any]]:
    """A burn-in as one recorded run: the run row, the job and its verdicts, the quarantine of the
    nodes found at fault (through `quarantine_via`, when given), and the run's end state. An
    exception or Ctrl-C still closes the run, as interrupted or failed, before it propagates."""
    from clusterctl.burnin import quarantine

    run_id = store.start_run("burnin", inventory=inventory,
                             args={"launcher": launcher.name, "model": spec.model, "nodes": expected_nodes,
                                   "nproc": spec.nproc, "steps": spec.steps, "duration_s": spec.duration_s,
                                   "timeout_s": spec.timeout_s, "fault": spec.fault, "job_run": spec.run_id})
    announce(f"burn-in run {run_id}: {spec.model} on {len(expected_nodes)} node(s), {world_size} rank(s), "
             f"through {launcher.name}")
    try:
        report = execute(launcher, spec, expected_nodes=expected_nodes, world_size=world_size, rules=rules,
                         store=store, run_id=run_id, rdma_nodes=rdma_nodes)
    except BaseException as exc:
        store.finish_run(run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                         {"error": str(exc)[:300]})
        raise
    actions = []
    if quarantine_via and report.to_quarantine:
        actions = quarantine.quarantine(report.to_quarantine, via=quarantine_via, store=store, source="burnin",
                                        schedulers=schedulers or quarantine.Schedulers(), run_id=run_id)
    store.finish_run(run_id, "failed" if report.failed else "succeeded",
                     {"passed": len(report.verdicts) - len(report.failed), "failed": sorted(report.failed),
                      "job": report.ref, "job_state": report.outcome.state})
    return report, actions


def _stopped_reason(reason: str) -> bool:
    return "stopped reporting" in reason or reason.startswith("no rank reported")


def _only_stopped(verdict: NodeVerdict) -> bool:
    """Failed only because its ranks stopped (or never reported): what another node's failure causes."""
    return verdict.status == "fail" and all(_stopped_reason(r) for r in verdict.reasons)


def blame_unstarted(verdicts: list[NodeVerdict], launch_errors: Mapping[str, str]) -> None:
    """A node the launcher could not start (unreachable, host key, login) fails for that reason.

    The job cannot form without it (torchrun's rendezvous waits for every node), so the nodes
    that only stopped or never reported are `incomplete`, not at fault.
    """
    if not launch_errors:
        return
    shown = _shown(launch_errors)
    for verdict in verdicts:
        if verdict.node in launch_errors:
            verdict.checks = []
            fail_check(verdict, LAUNCH, f"could not start the burn-in on this node: {launch_errors[verdict.node]}")
        elif _only_stopped(verdict):
            _incomplete(verdict, f"the job could not start on {shown}; burn in again to judge this node")


def _shown(nodes: Iterable[str]) -> str:
    names = sorted(nodes)
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _incomplete(verdict: NodeVerdict, why: str) -> None:
    verdict.downgrade(INCOMPLETE)
    verdict.checks.append(CheckResult(STOPPED_BY_OTHER, INCOMPLETE, why, rule=STOPPED_BY_OTHER,
                                      remediation=REMEDIATION[COMPLETION]))


def save(store: Store, report: BurninReport, records: list[dict[str, Any]]) -> None:
    """Verdicts, one `burnin.failed` event per node that did not pass, the node's burn-in checks and
    every step's telemetry.

    Each burn-in check is stored for every node, passing ones too, beside validation's: a node's
    page then shows the latest word of each check, and a later pass clears an earlier failure.
    Rows are built before the transaction opens, so the store's write lock is held only for the writes.
    """
    from clusterctl.state.records import NewEvent

    readings = samples(records, report.run_id)
    failures = [NewEvent("burnin.failed", v.node, payload={"reasons": v.findings()})
                for v in report.verdicts if v.status not in ("pass", "warn")]
    checks = check_rows(report.verdicts)
    with store.transaction() as tx:
        for verdict in report.verdicts:
            tx.record_burnin(verdict.node, verdict.status, run_id=report.run_id, reasons=verdict.findings(),
                             metrics=verdict.metrics)
        tx.record_events(failures, run_id=report.run_id)
        tx.record_checks(checks, run_id=report.run_id)
        tx.record_telemetry(readings)


def check_rows(verdicts: Iterable[NodeVerdict]) -> list[Any]:
    """One row per judged node and burn-in check: its worst finding, or a pass. An incomplete node
    was not judged, so it gets no new word."""
    from clusterctl.burnin.verdict import CHECKS
    from clusterctl.state.records import NewCheck
    from clusterctl.verdict import worst

    rows = []
    for verdict in verdicts:
        if verdict.status == INCOMPLETE:
            continue
        for name in CHECKS:
            found = [c for c in verdict.checks if c.name == name]
            rows.append(NewCheck(verdict.node, name, worst(c.status for c in found),
                                 "; ".join(c.detail for c in found) or None,
                                 {"rule": name, "remediation": next((c.remediation for c in found), None)}))
    return rows
