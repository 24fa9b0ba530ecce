"""Burn-in over SSH: one torchrun per node, started through paramiko, rendezvous on the first node.

Static rendezvous (`--master-addr` = the first node's SSH address, `--node-rank` = its
place in the list) makes global ranks deterministic: node i holds ranks i·nproc … i·nproc+nproc-1,
and CLUSTERCTL_NODE tells each rank the inventory name of its node. Every remote command
runs under coreutils `timeout`, so a controller that dies cannot leave ranks running past
the burn-in's deadline; `cancel` also ends them at once by the job's unique master port.
"""

from __future__ import annotations

import contextlib
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clusterctl.burnin.launchers.protocol import BurninSpec, Outcome, Submission
from clusterctl.burnin.launchers.torchrun import root_causes
from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from clusterctl.ssh.pool import Result, SSHPool
    from clusterctl.ssh.target import SSHTarget

POLL_S = 0.2


@dataclass
class _Job:
    port: int
    futures: dict[str, Future[Result]] = field(default_factory=dict)
    executor: ThreadPoolExecutor | None = None


class SSHLauncher:
    name = "ssh"

    def __init__(self, targets: dict[str, SSHTarget], pool: SSHPool | None = None,
                 master_port: int | None = None) -> None:
        from clusterctl.ssh.pool import SSHPool

        self.targets = targets
        self.pool = pool or SSHPool(max_sessions=max(8, len(targets)))
        self.master_port = master_port
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

    def command(self, spec: BurninSpec, node_rank: int, port: int) -> list[str]:
        head = self.targets[spec.nodes[0]].address
        limit = f"{int(spec.timeout_s) + 30}s"
        return ["timeout", "--kill-after=10s", limit,
                spec.python, "-m", "torch.distributed.run", "--nnodes", str(len(spec.nodes)),
                "--node-rank", str(node_rank), "--nproc-per-node", str(spec.nproc),
                "--master-addr", head, "--master-port", str(port), *spec.workload_args()]

    def environment(self, spec: BurninSpec, node: str) -> dict[str, str]:
        return {**spec.env(), "CLUSTERCTL_NODE": node, "PYTHONPATH": str(spec.workdir)}

    def render(self, spec: BurninSpec) -> dict[str, str]:
        from clusterctl.ssh.command import command_line

        port = self._port(spec)
        lines = [f"# {node} via ssh {self.targets[node].user}@{self.targets[node].endpoint}\n"
                 f"{command_line(self.command(spec, i, port), self.environment(spec, node))}\n"
                 for i, node in enumerate(self.expected_nodes(spec))]
        return {"commands.sh": "".join(lines)}

    def submit(self, spec: BurninSpec) -> Submission:
        nodes = self.expected_nodes(spec)
        job = _Job(port=self._port(spec), executor=ThreadPoolExecutor(max_workers=len(nodes),
                                                                      thread_name_prefix="burnin-ssh"))
        for i, node in enumerate(nodes):
            job.futures[node] = job.executor.submit(
                self.pool.run, self.targets[node], self.command(spec, i, job.port),
                env=self.environment(spec, node), timeout=spec.timeout_s + 60)
        self._jobs[spec.run_id] = job
        return Submission(self.name, spec.run_id, detail={"master_port": job.port, "nodes": nodes})

    def watch(self, submission: Submission, deadline: float) -> Outcome:
        job = self._jobs[submission.ref]
        while time.monotonic() < deadline:
            if all(f.done() for f in job.futures.values()):
                break
            time.sleep(POLL_S)
        else:
            return Outcome("timeout", None, "the run passed its timeout")
        failed: dict[str, str] = {}
        stderr: list[str] = []
        for node, future in job.futures.items():
            error = future.exception()
            if error is not None:
                failed[node] = str(error)
                continue
            result = future.result()
            stderr.append(result.stderr.decode(errors="replace"))
            if result.exit_status != 0:
                failed[node] = f"torchrun exited with status {result.exit_status}: {result.stderr_tail(200)}"
        if not failed:
            return Outcome("completed", 0)
        message = "; ".join(f"{node}: {why}" for node, why in sorted(failed.items()))[:600]
        return Outcome("failed", 1, message, root_causes(stderr))

    def collect(self, submission: Submission) -> list[str]:
        job = self._jobs[submission.ref]
        lines: list[str] = []
        for future in job.futures.values():
            if future.done() and future.exception() is None:
                lines.extend(future.result().stdout.decode(errors="replace").splitlines())
        return lines

    def cancel(self, submission: Submission) -> None:
        job = self._jobs.get(submission.ref)
        if job is None:
            return
        pending = [node for node, f in job.futures.items() if not f.done()]
        for node in pending:
            # An unreachable node's ranks end by their `timeout` wrapper instead.
            with contextlib.suppress(ClusterctlError):
                self.pool.run(self.targets[node], ["pkill", "-f", "--", f"--master-port {job.port} "], timeout=30)
        if job.executor is not None:
            job.executor.shutdown(wait=False, cancel_futures=True)
