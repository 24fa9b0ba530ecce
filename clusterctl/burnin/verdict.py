"""Per-node burn-in verdicts from the JSON lines every rank reports.

A node passes only if all of its ranks finished, trained (finite, falling loss), kept
parameters bit-identical to the other replicas, stayed unthrottled, and were not slow.
Slowness is judged two ways: against a floor from the ruleset for the GPU model, and
against the node's peers by the median absolute deviation, because a GPU running at a
third of its speed can pass every fixed diagnostic (an A100 at a third of its FP32 rate passed
`dcgmi diag --run xlong`: github.com/NVIDIA/DCGM/issues/122).

A hang stops every rank at the same step; the ranks' `stall` reports (train.py's watchdog) say
where each one waits. A rank stalled outside any collective is the one that hung: its node
fails for it. Ranks stalled in a collective only "stopped reporting", which `burnin.run.blame`
turns into `incomplete` once a culprit is known.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clusterctl.burnin.nccl_log import Transport
from clusterctl.validate import clock_events
from clusterctl.verdict import NodeVerdict

# The checks a burn-in verdict names, and what an operator does about each.
LAUNCH, COMPLETION, LOSS, CHECKSUM, SPEED, CLOCKS, FABRIC = CHECKS = (
    "burnin.launch", "burnin.completion", "burnin.loss", "burnin.checksum", "burnin.speed", "burnin.clocks",
    "burnin.fabric")
REMEDIATION = {
    LAUNCH: "Check SSH access, the host key and the scheduler's view of the node, then burn in again.",
    COMPLETION: "Read the rank's output (crash, OOM, hang); check the node's GPUs, driver and fabric; burn in again.",
    LOSS: "Numerical fault on this node's GPUs: run DCGM diagnostics (dcgmi diag -r 3) and check for XIDs.",
    CHECKSUM: "Silent data corruption suspected: drain the node and run DCGM diagnostics; RMA the GPU if it repeats.",
    SPEED: "Compare clocks, power limit, PCIe and NVLink with a healthy node; run DCGM diagnostics.",
    CLOCKS: "Check cooling, fans, inlet temperature and PSUs; reseat the GPU's heatsink if only one GPU slows down.",
    FABRIC: "Check the node's HCAs (ibstat: State Active, LinkUp), the OFED and nvidia-peermem modules, that the job "
            "sees /dev/infiniband (Kubernetes: the RDMA resource and IPC_LOCK; containers: the devices mounted) and "
            "that NCCL_IB_HCA names this node's HCAs; then burn in again.",
}


MIN_REPORTS_CUT_SHORT = 5
"""Reports a rank that did not finish needs before its speed or loss trend is judged."""


@dataclass(frozen=True)
class Rules:
    min_local_tokens_per_s: float | None = None  # floor per rank, from the GPU model's ruleset
    straggler_mads: float = 4.0  # how many MADs below the median makes a straggler...
    straggler_ratio: float = 0.85  # ...and it must also be this far below the median
    min_loss_drop: float = 0.0  # the late loss must be below the early loss by more than this
    min_steps: int = 1


@dataclass
class _Rank:
    rank: int
    node: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    checksums: dict[int, str] = field(default_factory=dict)
    ended: bool = False
    started: bool = False
    stall: dict[str, Any] | None = None


def fail_check(verdict: NodeVerdict, check: str, detail: str, status: str = "fail") -> None:
    verdict.add(status, check, detail, REMEDIATION.get(check))


def judge(records: Iterable[Mapping[str, Any]], expected_nodes: Iterable[str], world_size: int | None = None,
          rules: Rules = Rules()) -> list[NodeVerdict]:
    ranks: dict[int, _Rank] = {}
    for rec in records:
        if rec.get("clusterctl") != "burnin/v1":
            continue
        r = ranks.setdefault(int(rec["rank"]), _Rank(int(rec["rank"]), str(rec["node"])))
        event = rec.get("event")
        if event == "start":
            r.started = True
        elif event == "step":
            r.steps.append(dict(rec))
        elif event == "checksum":
            r.checksums[int(rec["step"])] = str(rec["checksum"])
        elif event == "end":
            r.ended = True
        elif event == "stall":
            r.stall = dict(rec)

    verdicts = {name: NodeVerdict(name) for name in expected_nodes}
    by_node: dict[str, list[_Rank]] = defaultdict(list)
    for r in ranks.values():
        verdicts.setdefault(r.node, NodeVerdict(r.node))
        by_node[r.node].append(r)

    for name, verdict in verdicts.items():
        if not by_node.get(name):
            fail_check(verdict, COMPLETION,
                       "no rank reported from this node (launch failed or the node is unreachable)")
    expected_ranks = range(world_size) if world_size else ()
    missing = sum(1 for i in expected_ranks if i not in ranks)
    if missing:
        # A count, not the list: every node carries it, and the list on each of 12,500 nodes of a
        # 100,000-rank world that never started is 10^9 numbers (21.8 GiB for one JSON report).
        for verdict in verdicts.values():
            verdict.metrics["missing_ranks"] = missing

    _judge_completion(by_node, verdicts, rules)
    _judge_loss(by_node, verdicts, rules)
    _judge_checksums(ranks, verdicts)
    _judge_speed(by_node, verdicts, rules)
    _judge_throttle(by_node, verdicts)
    return sorted(verdicts.values(), key=lambda v: v.node)


def _judge_completion(by_node: dict[str, list[_Rank]], verdicts: dict[str, NodeVerdict], rules: Rules) -> None:
    for node, ranks in by_node.items():
        for r in ranks:
            if not r.ended:
                last = r.steps[-1]["step"] if r.steps else 0
                fail_check(verdicts[node], COMPLETION, _stopped(r, last))
            elif len(r.steps) < rules.min_steps:
                fail_check(verdicts[node], COMPLETION,
                           f"rank {r.rank} reported {len(r.steps)} steps, fewer than {rules.min_steps}")


def hung_outside_collective(stall: Mapping[str, Any] | None) -> bool:
    return stall is not None and stall.get("where") not in (None, "collective")


def _stopped(r: _Rank, last: int) -> str:
    stall = r.stall
    if stall is None:
        return f"rank {r.rank} stopped reporting after step {last} (crash or hang)"
    stack = stall.get("stack") or []
    at = f" in {stack[0]}" if stack else ""
    if hung_outside_collective(stall):
        return (f"rank {r.rank} hung at step {stall.get('step')} outside any collective "
                f"({stall.get('phase')}{at}): the other ranks waited for it")
    return (f"rank {r.rank} stopped reporting after step {last} (waiting in a collective at step "
            f"{stall.get('step')}, {stall.get('phase')})")


def _loss(step: Mapping[str, Any]) -> float:
    value = step.get("loss")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _judge_loss(by_node: dict[str, list[_Rank]], verdicts: dict[str, NodeVerdict], rules: Rules) -> None:
    for node, ranks in by_node.items():
        for r in ranks:
            losses = [_loss(s) for s in r.steps]
            bad = next((s["step"] for s, loss in zip(r.steps, losses, strict=True) if not math.isfinite(loss)), None)
            if bad is not None:
                fail_check(verdicts[node], LOSS, f"rank {r.rank}: loss not finite at step {bad}")
                continue
            if len(losses) >= (3 if r.ended else MIN_REPORTS_CUT_SHORT):
                third = max(1, len(losses) // 3)
                early, late = statistics.fmean(losses[:third]), statistics.fmean(losses[-third:])
                verdicts[node].metrics.setdefault("loss_last", losses[-1])
                if not late < early - rules.min_loss_drop:
                    fail_check(verdicts[node], LOSS, f"rank {r.rank}: loss not falling ({early:.3f} → {late:.3f})")


def _judge_checksums(ranks: dict[int, _Rank], verdicts: dict[str, NodeVerdict]) -> None:
    steps = sorted({s for r in ranks.values() for s in r.checksums})
    for step in steps:
        values = Counter(r.checksums[step] for r in ranks.values() if step in r.checksums)
        if len(values) < 2:
            continue
        top, count = values.most_common(1)[0]
        # No majority: every replica is suspect, name them all rather than guess.
        majority: str | None = top if count * 2 > sum(values.values()) else None
        for r in ranks.values():
            if step in r.checksums and r.checksums[step] != majority:
                fail_check(verdicts[r.node], CHECKSUM,
                    f"rank {r.rank}: parameter checksum differs from the other replicas at step {step} "
                    "(silent data corruption suspected)")


def _rank_speed(r: _Rank) -> float | None:
    # Skip the first report: it includes warm-up (allocation, compilation, caches). A finished run too
    # short for a second report has only that one. A rank that stopped early (its job was stopped, or
    # it hung) is judged only on enough reports: two or three steps on a busy machine are noise.
    speeds = [s["local_tokens_per_s"] for s in r.steps[1:] if s.get("local_tokens_per_s")]
    if not speeds and r.ended:
        speeds = [s["local_tokens_per_s"] for s in r.steps if s.get("local_tokens_per_s")]
    if not r.ended and len(speeds) < MIN_REPORTS_CUT_SHORT:
        return None
    return statistics.median(speeds) if speeds else None


def _judge_speed(by_node: dict[str, list[_Rank]], verdicts: dict[str, NodeVerdict], rules: Rules) -> None:
    speeds: dict[tuple[str, int], float] = {}
    for node, ranks in by_node.items():
        for r in ranks:
            speed = _rank_speed(r)
            if speed is not None:
                speeds[(node, r.rank)] = speed
        node_speeds = [speeds[(node, r.rank)] for r in ranks if (node, r.rank) in speeds]
        if node_speeds:
            verdicts[node].metrics["local_tokens_per_s"] = round(min(node_speeds), 1)
    if not speeds:
        return
    values = list(speeds.values())
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    few = len(values) < 5
    for (node, rank), speed in speeds.items():
        if rules.min_local_tokens_per_s and speed < rules.min_local_tokens_per_s:
            fail_check(verdicts[node], SPEED, f"rank {rank}: {speed:,.0f} tokens/s is below the floor of "
                                f"{rules.min_local_tokens_per_s:,.0f} for this GPU model")
        if len(values) < 2:
            continue
        # With few ranks the fleet median includes the suspect itself: compare with the others.
        reference = statistics.median(v for k, v in speeds.items() if k != (node, rank)) if few else median
        slow = speed < reference * rules.straggler_ratio
        if slow and (few or speed < median - rules.straggler_mads * mad):
            fail_check(verdicts[node], SPEED, f"rank {rank}: straggler, {speed:,.0f} tokens/s against a median of "
                                f"{reference:,.0f} for its peers ({speed / reference:.0%})")


def _judge_throttle(by_node: dict[str, list[_Rank]], verdicts: dict[str, NodeVerdict]) -> None:
    for node, ranks in by_node.items():
        for r in ranks:
            seen = 0
            for s in r.steps:
                seen |= int(s.get("gpu_throttle_reasons") or 0)
            found = clock_events.findings(clock_events.reasons(seen), clock_events.LOAD)
            for level in ("fail", "warn"):
                names = [clock_events.POLICY[name].label for name, seen_level in found.items() if seen_level == level]
                if names:
                    fail_check(verdicts[node], CLOCKS,
                               f"rank {r.rank}: GPU clocks throttled during the run ({', '.join(names)})", level)


def judge_fabric(verdicts: Iterable[NodeVerdict], transports: Mapping[str, Transport],
                 rdma_nodes: Iterable[str]) -> None:
    """Record each node's transport; a node with InfiniBand whose NCCL fell back to TCP sockets fails.

    Only a job of more than one node crosses the fabric; a gloo run (CPU) has no NCCL, so its
    transport is recorded as gloo and nothing is judged.
    """
    verdicts = list(verdicts)
    rdma = set(rdma_nodes)
    multi_node = len(verdicts) > 1
    for verdict in verdicts:
        transport = transports.get(verdict.node)
        if transport is None:
            continue
        verdict.metrics["transport"] = transport.name
        if transport.ib_devices:
            verdict.metrics["nccl_ib_devices"] = sorted(transport.ib_devices)
        if not multi_node or verdict.node not in rdma or transport.backend != "nccl":
            continue
        if transport.fell_back_to_sockets:
            fail_check(verdict, FABRIC, "NCCL used TCP sockets (\"Using network Socket\"), not InfiniBand: the "
                       "all-reduce bypassed the fabric this node's inventory lists")
        elif not transport.networks:
            fail_check(verdict, FABRIC, "NCCL did not log its network (NCCL_DEBUG=INFO overridden?): the fabric "
                       "this node's inventory lists is unverified", status="warn")
