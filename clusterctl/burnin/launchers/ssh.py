"""Burn-in over SSH: one torchrun per node, rendezvous on the first node, fleets of thousands of nodes.

Static rendezvous (`--master-addr` = the first node's SSH address, `--node-rank` = its
place in the list) makes global ranks deterministic: node i holds ranks i·nproc … i·nproc+nproc-1,
and CLUSTERCTL_NODE tells each rank the inventory name of its node. Every remote command
runs under coreutils `timeout`, so a controller that dies cannot leave ranks running past
the burn-in's deadline; `cancel` also ends them at once by the job's unique master port.

torchrun's static rendezvous waits for every node, so a bounded pool of blocking calls
would deadlock past its size: `clusterctl.ssh.longrun` starts every node's command
(`max_starting` connects at a time) and follows them all from one thread. A node that
cannot be reached is named in `Submission.detail["launch_errors"]` and the job is given up at
once: the other nodes would only wait at the rendezvous until their timeout.

Ranks run on the node's burn-in runtime (`clusterctl.burnin.runtime`): its python, its copy of the
workload. Before anything starts, one SSH round checks that every node has the runtime of this
controller's version and workload; the nodes that do not are launch errors that name the command
installing it, and nothing starts anywhere.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clusterctl.burnin.launchers.protocol import BurninSpec, Outcome, Submission
from clusterctl.burnin.launchers.torchrun import root_causes
from clusterctl.burnin.runtime import Runtime
from clusterctl.burnin.runtime import check as check_runtime
from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from clusterctl.ssh.longrun import LongRuns, NodeRun
    from clusterctl.ssh.target import SSHTarget

POLL_S = 0.2


@dataclass
class _Job:
    port: int
    runs: LongRuns


class SSHLauncher:
    name = "ssh"

    def __init__(self, targets: dict[str, SSHTarget], master_port: int | None = None, *, max_starting: int = 32,
                 connect_timeout: float = 10.0, inventory: str | None = None, runtime: Runtime | None = None) -> None:
        self.targets = targets
        self.inventory = inventory
        """The inventory file, named in the command that installs a missing runtime."""
        self.runtime = runtime or Runtime.this_release()
        self.master_port = master_port
        self.max_starting = max_starting
        self.connect_timeout = connect_timeout
        self._jobs: dict[str, _Job] = {}

    def expected_nodes(self, spec: BurninSpec) -> list[str]:
        if not spec.nodes:
            raise ClusterctlError("the ssh launcher needs nodes: give the inventory FILE and --nodes")
        missing = [n for n in spec.nodes if n not in self.targets]
        if missing:
            raise ClusterctlError(f"no SSH target for {', '.join(missing[:5])}")
        return list(spec.nodes)

    def world_size(self, spec: BurninSpec) -> int:
        return len(spec.nodes) * spec.nproc

    def _port(self, spec: BurninSpec) -> int:
        # One port per job (seeded by the run id) so that cancel can find exactly this job's ranks.
        return self.master_port or random.Random(spec.run_id).randrange(20000, 40000)  # noqa: S311

    def command(self, spec: BurninSpec, node_rank: int, port: int, home: str | None = None) -> list[str]:
        """`home`: where the node said its runtime is (the check's answer); the usual place otherwise."""
        head = self.targets[spec.nodes[0]].address
        limit = f"{int(spec.timeout_s) + 30}s"
        python = f"{home}/bin/python" if home else self.runtime.python
        return ["timeout", "--kill-after=10s", limit, python, "-m", "torch.distributed.run",
                "--nnodes", str(len(spec.nodes)), "--node-rank", str(node_rank), "--nproc-per-node", str(spec.nproc),
                "--master-addr", head, "--master-port", str(port), *spec.workload_args()]

    def environment(self, spec: BurninSpec, node: str, home: str | None = None) -> dict[str, str]:
        return {**spec.env(), "CLUSTERCTL_NODE": node, "PYTHONPATH": f"{home}/src" if home else self.runtime.workdir}

    def render(self, spec: BurninSpec) -> dict[str, str]:
        from clusterctl.ssh.command import command_line

        port = self._port(spec)
        lines = [f"# {node} via ssh {self.targets[node].user}@{self.targets[node].endpoint}\n"
                 f"{command_line(self.command(spec, i, port), self.environment(spec, node))}\n"
                 for i, node in enumerate(self.expected_nodes(spec))]
        return {"commands.sh": "".join(lines)}

    def submit(self, spec: BurninSpec) -> Submission:
        from clusterctl.ssh.longrun import LongRuns

        nodes = self.expected_nodes(spec)
        checked = check_runtime({n: self.targets[n] for n in nodes}, self.runtime, inventory=self.inventory,
                                max_parallel=self.max_starting)
        refused = checked.problems | {n: f"{_KINDS.get(kind or '', 'failed')}: {why}"
                                      for n, (kind, why) in checked.errors.items()}
        if refused:
            message = _refusal(refused, sorted(checked.problems), self.inventory)
            return Submission(self.name, spec.run_id, detail={"nodes": nodes, "launch_errors": refused,
                                                              "refusal": message})
        job = _Job(port=self._port(spec), runs=LongRuns(max_starting=self.max_starting,
                                                         connect_timeout=self.connect_timeout))
        homes = checked.homes
        job.runs.start([(self.targets[node], self.command(spec, i, job.port, homes[node]),
                         self.environment(spec, node, homes[node])) for i, node in enumerate(nodes)],
                       timeout=spec.timeout_s + 60)
        self._jobs[spec.run_id] = job
        return Submission(self.name, spec.run_id, detail={"master_port": job.port, "nodes": nodes})

    def watch(self, submission: Submission, deadline: float) -> Outcome:
        """Follow to the end; give up early when a node could not be started (the rendezvous cannot form)."""
        if submission.ref not in self._jobs:  # refused before starting: a node lacks the runtime or an answer
            return Outcome("failed", 1, submission.detail["refusal"])
        runs = self._jobs[submission.ref].runs
        checked = False
        while not runs.wait(min(POLL_S, deadline - time.monotonic())):
            if not checked and runs.started():
                checked = True
                if unstarted := runs.start_failures():
                    errors = {n: _why(r) for n, r in unstarted.items()}
                    submission.detail["launch_errors"] = errors
                    message = "; ".join(f"{n}: {why}" for n, why in sorted(errors.items()))
                    return Outcome("failed", 1, f"{len(errors)} node(s) could not start the job: {message}"[:600])
            if time.monotonic() >= deadline:
                return Outcome("timeout", None, "the run passed its timeout")
        final = runs.snapshot()
        if never_started := {n: _why(r) for n, r in final.items() if r.state == "failed" and not r.started}:
            submission.detail["launch_errors"] = never_started
        failed = {n: _why(r) for n, r in final.items() if r.state == "failed" or r.exit_status}
        if not failed:
            return Outcome("completed", 0)
        message = "; ".join(f"{node}: {why}" for node, why in sorted(failed.items()))[:600]
        return Outcome("failed", 1, message, root_causes(r.stderr.decode(errors="replace") for r in final.values()))

    def collect(self, submission: Submission) -> list[str]:
        """Every node's output so far, finished or not: a hung job's lines still say how far each rank got."""
        job = self._jobs.get(submission.ref)
        if job is None:
            return []
        lines: list[str] = []
        for run in job.runs.snapshot().values():
            lines.extend(run.stdout.decode(errors="replace").splitlines())
        return lines

    def cancel(self, submission: Submission) -> None:
        job = self._jobs.get(submission.ref)
        if job is None:
            return
        # Only nodes whose command may still run are visited; an unreachable node's ranks end by their
        # `timeout` wrapper instead.
        pattern = f"--master-port {job.port} "
        job.runs.stop(lambda node: ["pkill", "-f", "--", pattern], max_parallel=self.max_starting)


_KINDS = {"SSHUnreachable": "unreachable", "SSHHostKeyError": "host key not trusted",
          "SSHAuthFailed": "SSH login refused", "SSHCommandTimeout": "timed out", "SSHBadOutput": "bad output"}


def _why(run: NodeRun) -> str:
    if run.error:
        return f"{_KINDS.get(run.error_type or '', 'failed')}: {run.error}"
    tail = run.stderr.decode(errors="replace").strip()[-200:]
    return f"torchrun exited with status {run.exit_status}: {tail}"


def _refusal(errors: dict[str, str], lacking: list[str], inventory: str | None) -> str:
    """The job's message: the fix for the nodes without the runtime first (it must survive the cut), then each node."""
    from clusterctl.burnin.runtime import fix_command
    from clusterctl.inventory.hostlist import fold

    fix = f"install the burn-in runtime with: {fix_command(inventory, fold(lacking))}; " if lacking else ""
    each = "; ".join(f"{node}: {why}" for node, why in sorted(errors.items()))
    return f"{len(errors)} node(s) could not start the job, nothing was started: {fix}{each}"[:600]
