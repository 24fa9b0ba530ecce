"""Interconnect bandwidth: all-reduce between node pairs (and, on request, in rings), judged per node.

A slow node hides in a pair: a pair runs at the pace of its slower node, so one measurement
cannot say which node is at fault. Pairing along a ring (round 1 pairs 0-1, 2-3, …; round 2
pairs 1-2, 3-4, …, n-1-0; an odd count needs a third round for the wrap-around) gives every
node two different partners in at most three rounds, whatever the fleet's size. Then:

- a node whose every pair is slow fails; it is *isolated* when a partner of it passes with
  its other partner (so the partner is fine and the node is the common factor);
- a slow pair whose nodes both pass elsewhere is reported as a suspect link or path (a warning
  on both nodes); a slow pair explained by a failed partner is not held against the other node.

Each job is `torchrun` with static rendezvous on the job's first node running
workloads/allreduce (NCCL on GPUs, gloo on CPUs), started over SSH under coreutils `timeout`.
Figures are nccl-tests' bus bandwidth; the expected figure and the thresholds come from the
ruleset (rules `fabric.allreduce_busbw` and `fabric.allreduce_ring`).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterctl.ssh import SSHAuthFailed, SSHError, SSHHostKeyError, SSHPool, SSHTarget, SSHUnreachable, run_many
from clusterctl.validate.expect import Expectation
from clusterctl.validate.rules import Ruleset
from clusterctl.verdict import CheckResult

PAIR_CHECK = "fabric.allreduce_busbw"
RING_CHECK = "fabric.allreduce_ring"
SCHEMA = "allreduce/v1"
WORKLOAD_ROOT = Path(__file__).resolve().parents[2]
"""Where workloads/ lives beside the package; on real nodes, where the os stage installed it."""
BENCH_FILE = "workloads/allreduce/bench.py"
NOT_REACHED = (SSHUnreachable, SSHAuthFailed, SSHHostKeyError)
"""SSH failures that say the node itself could not be reached: the node's fault, not its partner's."""


# --- the plan -----------------------------------------------------------------------------------------
def plan_pairs(nodes: Sequence[str]) -> list[list[tuple[str, str]]]:
    """Rounds of disjoint pairs along the ring of `nodes`: each node meets both ring neighbours."""
    n = len(nodes)
    if n < 2:
        return []
    if n == 2:
        return [[(nodes[0], nodes[1])]]
    edges = [(i, (i + 1) % n) for i in range(n)]
    wrap = [(n - 1, 0)] if n % 2 else []
    rounds = [[e for e in edges if e[0] % 2 == 0 and e not in wrap], [e for e in edges if e[0] % 2 == 1], wrap]
    return [[(nodes[a], nodes[b]) for a, b in r] for r in rounds if r]


def ring_groups(expectations: Sequence[Expectation], by: str) -> list[list[str]]:
    """`rack`: one ring per rack (two nodes or more); `all`: one ring of every node; `none`: no ring."""
    if by == "none":
        return []
    if by == "all":
        return [[e.node for e in expectations]] if len(expectations) > 1 else []
    racks: dict[str, list[str]] = {}
    for e in expectations:
        racks.setdefault(e.rack or "-", []).append(e.node)
    return [members for members in racks.values() if len(members) > 1]


# --- expected figures -----------------------------------------------------------------------------------
def expected_gbs(expect: Expectation, rules: Ruleset, nproc: int) -> float | None:
    """min(IB rails, intra-node ring); None without InfiniBand in the inventory (nothing to expect)."""
    if not (expect.ib_hcas and expect.ib_rate_gbps):
        return None
    efficiency = float(rules.param(PAIR_CHECK, "nic_efficiency", 0.96))
    limit = expect.ib_hcas * expect.ib_rate_gbps / 8 * efficiency
    intra = rules.param(PAIR_CHECK, "intra_node_busbw_gbs")
    if intra and nproc > 1:
        limit = min(limit, float(intra))
    return limit


def threshold_gbs(rules: Ruleset, rule_id: str, expected: float | None) -> float | None:
    absolute = rules.param(rule_id, "min_busbw_gbs")
    if absolute is not None:
        return float(absolute)
    if expected is None:
        return None
    return float(rules.param(rule_id, "min_fraction", 0.8)) * expected


# --- running the benchmark ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchOptions:
    """How every node starts workloads/allreduce: the same command for pairs and rings."""

    python: str
    workdir: str
    nproc: int = 1
    min_bytes: int = 1 << 20
    max_bytes: int = 1 << 30
    warmup: int = 5
    iters: int = 20
    time_limit_s: float = 60.0
    timeout_s: float = 300.0
    master_port: int | None = None
    connect_timeout: float = 10.0

    @classmethod
    def from_rules(cls, rules: Ruleset, **given: Any) -> BenchOptions:
        names = ("min_bytes", "max_bytes", "warmup", "iters")
        params: dict[str, float] = {name: int(rules.param(PAIR_CHECK, name, getattr(cls, name))) for name in names}
        params["time_limit_s"] = float(rules.param(PAIR_CHECK, "time_limit_s", cls.time_limit_s))
        params["timeout_s"] = float(rules.param(PAIR_CHECK, "timeout_s", cls.timeout_s))
        return cls(**{**params, **given})

    def command(self, nnodes: int, rank: int, head: str, port: int) -> list[str]:
        return ["timeout", "--kill-after=10s", f"{int(self.timeout_s)}s",
                self.python, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--node-rank", str(rank),
                "--nproc-per-node", str(self.nproc), "--master-addr", head, "--master-port", str(port),
                "--monitor-interval", "0.5",
                "-m", "workloads.allreduce", "--min-bytes", str(self.min_bytes), "--max-bytes", str(self.max_bytes),
                "--warmup", str(self.warmup), "--iters", str(self.iters),
                "--time-limit", f"{self.time_limit_s:g}", "--timeout", f"{max(30.0, self.timeout_s - 30):g}"]

    def env(self, node: str) -> dict[str, str]:
        return {"CLUSTERCTL_NODE": node, "PYTHONPATH": self.workdir}


@dataclass(frozen=True)
class Measurement:
    """One job (a pair or a ring): its bus bandwidth, or why there is none."""

    nodes: tuple[str, ...]
    busbw_gbs: float | None
    error: str | None = None
    unreachable: tuple[str, ...] = ()
    sizes: tuple[dict[str, Any], ...] = ()
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"nodes": list(self.nodes), "busbw_gbs": self.busbw_gbs, "error": self.error,
                "unreachable": list(self.unreachable), "sizes": list(self.sizes), "seconds": round(self.seconds, 2)}


@dataclass
class BandwidthRun:
    rounds: list[list[Measurement]] = field(default_factory=list)
    rings: list[Measurement] = field(default_factory=list)
    not_ready: dict[str, str] = field(default_factory=dict)
    """Nodes left out of the pairing (unreachable, or without the workload), with the reason."""

    @property
    def pairs(self) -> list[Measurement]:
        return [m for r in self.rounds for m in r]

    def as_dict(self) -> dict[str, Any]:
        return {"rounds": len(self.rounds), "pairs": [m.as_dict() for m in self.pairs],
                "rings": [m.as_dict() for m in self.rings], "not_ready": self.not_ready}


def _document(stdout: bytes) -> dict[str, Any] | None:
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{") and SCHEMA in line:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("clusterctl") == SCHEMA:
                return doc
    return None


def run_job(nodes: Sequence[str], targets: Mapping[str, SSHTarget], pool: SSHPool, options: BenchOptions,
            port: int) -> Measurement:
    """One all-reduce job over `nodes` (rank order); every node's torchrun started at once."""
    started = time.monotonic()
    head = targets[nodes[0]].address
    with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="allreduce") as executor:
        futures = {node: executor.submit(pool.run, targets[node], options.command(len(nodes), rank, head, port),
                                         env=options.env(node), timeout=options.timeout_s + 30)
                   for rank, node in enumerate(nodes)}
    errors: list[str] = []
    unreachable: list[str] = []
    docs: list[dict[str, Any]] = []
    for node, future in futures.items():
        exc = future.exception()
        if isinstance(exc, SSHError):
            errors.append(f"{node}: {exc.reason}")
            if isinstance(exc, NOT_REACHED):
                unreachable.append(node)
            continue
        if exc is not None:
            errors.append(f"{node}: {type(exc).__name__}: {exc}")
            continue
        result = future.result()
        doc = _document(result.stdout)
        if result.exit_status != 0 or doc is None:
            why = "timed out" if result.exit_status in (124, 137) else f"exited with status {result.exit_status}"
            errors.append(f"{node}: torchrun {why}: {result.stderr_tail(300) or 'no output'}")
        elif not doc.get("correct", True):
            errors.append(f"{node}: the all-reduce gave wrong sums (data corruption on the path)")
        else:
            docs.append(doc)
    seconds = time.monotonic() - started
    if errors or not docs:
        return Measurement(tuple(nodes), None, "; ".join(errors) or "no rank reported", tuple(unreachable),
                           seconds=seconds)
    slowest = min(docs, key=lambda d: float(d.get("busbw_gbs") or 0.0))
    return Measurement(tuple(nodes), float(slowest.get("busbw_gbs") or 0.0),
                       sizes=tuple(slowest.get("results") or ()), seconds=seconds)


def run_jobs(jobs: Sequence[Sequence[str]], targets: Mapping[str, SSHTarget], options: BenchOptions, *,
             first_port: int, max_parallel: int = 32,
             on_done: Callable[[Measurement], None] | None = None) -> list[Measurement]:
    """Disjoint jobs at once, at most `max_parallel` nodes in flight; each job gets its own port."""
    if not jobs:
        return []
    widest = max(len(j) for j in jobs)
    workers = max(1, min(len(jobs), max_parallel // widest))
    # Sessions for every node of every job in flight: a job whose second node waited for a
    # session would hold its first node at the rendezvous until the deadline.
    pool = SSHPool(max_sessions=workers * widest, connect_timeout=options.connect_timeout,
                   command_timeout=options.timeout_s + 60)

    def one(index: int) -> Measurement:
        measured = run_job(jobs[index], targets, pool, options, first_port + index)
        if on_done is not None:
            on_done(measured)
        return measured

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="allreduce-jobs") as executor:
        return list(executor.map(one, range(len(jobs))))


def preflight(nodes: Sequence[str], targets: Mapping[str, SSHTarget], options: BenchOptions,
              max_parallel: int) -> dict[str, str]:
    """Nodes that cannot take part (unreachable, or no workload under --bandwidth-workdir), with why.

    Checked first so that one dead node does not hold both of its partners at the rendezvous
    until the timeout; it fails alone and the others pair among themselves.
    """
    pool = SSHPool(max_sessions=max_parallel, connect_timeout=options.connect_timeout, command_timeout=60)
    bench = f"{options.workdir.rstrip('/')}/{BENCH_FILE}"

    def check(target: SSHTarget) -> int:
        return pool.run(target, ["test", "-f", bench], timeout=60).exit_status

    outcomes = run_many([targets[n] for n in nodes], check, max_parallel=max_parallel)
    missing = f"{BENCH_FILE} is not under {options.workdir} on the node (install the workloads or --bandwidth-workdir)"
    return {o.target: (o.error or o.error_type or "SSH failed") if not o.ok else missing
            for o in outcomes if not o.ok or o.value != 0}


def measure_bandwidth(nodes: Sequence[str], targets: Mapping[str, SSHTarget], options: BenchOptions, *,
                      rings: Sequence[Sequence[str]] = (), max_parallel: int = 32,
                      on_done: Callable[[Measurement], None] | None = None) -> BandwidthRun:
    """Preflight, the pair rounds one after the other, then the rings (disjoint groups, at once)."""
    run = BandwidthRun(not_ready=preflight(nodes, targets, options, max_parallel))
    ready = [n for n in nodes if n not in run.not_ready]
    port = options.master_port or random.randrange(20000, 40000)  # noqa: S311 - a port, not a secret
    for pairs in plan_pairs(ready):
        run.rounds.append(run_jobs(pairs, targets, options, first_port=port, max_parallel=max_parallel,
                                   on_done=on_done))
        port += len(pairs)
    groups = [[n for n in g if n not in run.not_ready] for g in rings]
    run.rings = run_jobs([g for g in groups if len(g) > 1], targets, options, first_port=port,
                         max_parallel=max_parallel, on_done=on_done)
    return run


# --- judging --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pair:
    partner: str
    measured: Measurement
    threshold: float | None
    expected: float | None

    @property
    def slow(self) -> bool:
        busbw = self.measured.busbw_gbs
        return busbw is None or (self.threshold is not None and busbw < self.threshold)

    def as_dict(self) -> dict[str, Any]:
        return {"partner": self.partner, "busbw_gbs": self.measured.busbw_gbs, "error": self.measured.error,
                "slow": self.slow}

    def text(self) -> str:
        if self.measured.busbw_gbs is None:
            return f"with {self.partner}: {self.measured.error}"
        return f"{self.measured.busbw_gbs:.1f} GB/s with {self.partner}"


def _job_limits(nodes: Sequence[str], expectations: Mapping[str, Expectation], rulesets: Mapping[str | None, Ruleset],
                rule_id: str, nproc: int) -> tuple[float | None, float | None]:
    """(expected, threshold) of a job: the weakest node's expectation, the most lenient threshold."""
    expected_each = [expected_gbs(expectations[n], rulesets[expectations[n].gpu_model], nproc) for n in nodes]
    expected = None if None in expected_each else min(e for e in expected_each if e is not None)
    thresholds = [threshold_gbs(rulesets[expectations[n].gpu_model], rule_id, expected) for n in nodes]
    known = [t for t in thresholds if t is not None]
    return expected, (min(known) if known else None)


def bandwidth_checks(run: BandwidthRun, expectations: Mapping[str, Expectation],
                     rulesets: Mapping[str | None, Ruleset], nproc: int = 1) -> dict[str, list[CheckResult]]:
    """Pure: every measured (or left out) node's checks from the pair rounds and the rings."""
    checks: dict[str, list[CheckResult]] = {}
    pairs: dict[str, list[_Pair]] = {}
    for measured in run.pairs:
        expected, threshold = _job_limits(measured.nodes, expectations, rulesets, PAIR_CHECK, nproc)
        a, b = measured.nodes
        pairs.setdefault(a, []).append(_Pair(b, measured, threshold, expected))
        pairs.setdefault(b, []).append(_Pair(a, measured, threshold, expected))
    failed = {node for node, mine in pairs.items() if _all_slow(node, mine)}
    passes_somewhere = {node for node, mine in pairs.items() if any(not p.slow for p in mine)}
    for node in expectations:
        rules = rulesets[expectations[node].gpu_model]
        if node in run.not_ready:
            checks.setdefault(node, []).append(rules.judge(
                PAIR_CHECK, True, f"not measured: {run.not_ready[node]}", data={"pairs": []}))
        elif node in pairs:
            checks.setdefault(node, []).append(
                _pair_check(node, pairs[node], rules, failed, passes_somewhere))
        elif len(expectations) > 1:
            checks.setdefault(node, []).append(rules.judge(
                PAIR_CHECK, True, "not measured: no reachable partner", status="warn", data={"pairs": []}))
    for measured in run.rings:
        expected, threshold = _job_limits(measured.nodes, expectations, rulesets, RING_CHECK, nproc)
        for node in measured.nodes:
            checks.setdefault(node, []).append(_ring_check(node, measured, expected, threshold,
                                                           rulesets[expectations[node].gpu_model], failed))
    return checks


def _all_slow(node: str, mine: list[_Pair]) -> bool:
    """Every conclusive pair slow; a pair whose partner could not be reached says nothing of `node`."""
    if node in {u for p in mine for u in p.measured.unreachable}:
        return True
    conclusive = [p for p in mine if p.partner not in p.measured.unreachable]
    return bool(conclusive) and all(p.slow for p in conclusive)


def _pair_check(node: str, mine: list[_Pair], rules: Ruleset, failed: set[str],
                passes_somewhere: set[str]) -> CheckResult:
    measured = [p.measured.busbw_gbs for p in mine if p.measured.busbw_gbs is not None]
    threshold = min((p.threshold for p in mine if p.threshold is not None), default=None)
    expected = min((p.expected for p in mine if p.expected is not None), default=None)
    data = {"busbw_gbs": min(measured) if measured else None, "expected_gbs": expected, "threshold_gbs": threshold,
            "partners": [p.partner for p in mine], "pairs": [p.as_dict() for p in mine]}
    figures = "; ".join(p.text() for p in mine)
    limit = f"threshold {threshold:.1f} GB/s" if threshold is not None else "no threshold"
    if expected is not None:
        limit += f" of expected {expected:.1f}"
    if threshold is None and all(p.measured.busbw_gbs is not None for p in mine):
        return rules.judge(PAIR_CHECK, True, f"{figures}; no expected figure: give the inventory's "
                           "hardware.infiniband or min_busbw_gbs in a site rules file", status="warn", data=data)
    if node in failed:
        if any(node in p.measured.unreachable for p in mine):
            why = next(p.measured.error for p in mine if node in p.measured.unreachable)
            return rules.judge(PAIR_CHECK, True, f"unreachable during the test: {why}", data=data)
        isolated = any(p.partner in passes_somewhere for p in mine)
        data["isolated"] = isolated
        why = ("isolated: its partners pass with their other partners" if isolated
               else "not isolated: its partners are slow elsewhere too")
        return rules.judge(PAIR_CHECK, True, f"slow with every partner ({figures}; {limit}); {why}", data=data)
    suspects = [p for p in mine if p.slow and p.partner not in failed and p.partner not in p.measured.unreachable]
    if suspects:
        data["suspect_links"] = [f"{node}-{p.partner}" for p in suspects]
        names = ", ".join(f"{node}-{p.partner}" for p in suspects)
        return rules.judge(PAIR_CHECK, True, f"pair {names} slow while both nodes pass elsewhere: suspect the link "
                           f"or path between them ({figures}; {limit})", status="warn", data=data)
    explained = [p.partner for p in mine if p.slow]
    tail = f" (slow only with {', '.join(explained)}, which fails on its own)" if explained else ""
    return rules.judge(PAIR_CHECK, False, f"{figures} ({limit}){tail}", data=data)


def _ring_check(node: str, measured: Measurement, expected: float | None, threshold: float | None,
                rules: Ruleset, failed: set[str]) -> CheckResult:
    """A ring runs at its slowest member's pace: a slow ring with a member that fails its pairs is
    that member's failure; without one, every member is held to it (a switch or uplink problem)."""
    size = len(measured.nodes)
    data = {"busbw_gbs": measured.busbw_gbs, "expected_gbs": expected, "threshold_gbs": threshold,
            "ring": list(measured.nodes), "error": measured.error}
    culprits = [n for n in measured.nodes if n in failed]
    slow = measured.busbw_gbs is None or (threshold is not None and measured.busbw_gbs < threshold)
    if slow and culprits and node not in culprits:
        figure = f"{measured.busbw_gbs:.1f} GB/s" if measured.busbw_gbs is not None else "failed"
        return rules.judge(RING_CHECK, False, f"ring of {size} nodes: {figure}, explained by "
                           f"{', '.join(culprits)}, which fails its pair checks", data=data)
    if measured.busbw_gbs is None:
        blamed = node in measured.unreachable
        return rules.judge(RING_CHECK, True, f"ring of {size} nodes failed: {measured.error}",
                           status=None if blamed or not measured.unreachable else "warn", data=data)
    if threshold is None:
        return rules.judge(RING_CHECK, True, f"ring of {size} nodes: {measured.busbw_gbs:.1f} GB/s; no expected "
                           "figure (min_busbw_gbs)", status="warn", data=data)
    detail = f"ring of {size} nodes: {measured.busbw_gbs:.1f} GB/s (threshold {threshold:.1f} GB/s)"
    return rules.judge(RING_CHECK, measured.busbw_gbs < threshold, detail, data=data)
