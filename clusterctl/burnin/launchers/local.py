"""Burn-in on this machine: one torchrun with `nproc` ranks, standing in for `nodes` when given.

With inventory nodes, the ranks are split evenly between them and CLUSTERCTL_RANK_NODES
tells each rank which node it plays, so the verdict names nodes exactly as a real
multi-node run would. On timeout or cancel torchrun's process group gets SIGTERM, then SIGKILL;
then every process that still carries the run's mark (clusterctl.processes) is killed, wherever
it went: torchrun starts its ranks in sessions of their own, and a rank may have started more.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from clusterctl.burnin.launchers.protocol import BurninSpec, Outcome, Submission
from clusterctl.burnin.launchers.torchrun import root_causes
from clusterctl.errors import ClusterctlError
from clusterctl.processes import end_marked, mark_env, new_mark, signal_group

POLL_S = 0.2
KILL_GRACE_S = 5.0


def rank_nodes(spec: BurninSpec) -> list[str]:
    """The node each rank plays, indexed by rank: contiguous blocks of `nproc // len(nodes)`."""
    if not spec.nodes:
        return [socket.gethostname()] * spec.nproc
    if spec.nproc % len(spec.nodes):
        raise ClusterctlError(
            f"--nproc {spec.nproc} does not split evenly over {len(spec.nodes)} nodes; "
            "the local launcher runs nproc ranks in all")
    per_node = spec.nproc // len(spec.nodes)
    return [spec.nodes[r // per_node] for r in range(spec.nproc)]


class LocalLauncher:
    name = "local"

    def __init__(self, processes: dict[str, subprocess.Popen[bytes]] | None = None) -> None:
        self._procs: dict[str, subprocess.Popen[bytes]] = processes if processes is not None else {}
        self._marks: dict[str, str] = {}

    def expected_nodes(self, spec: BurninSpec) -> list[str]:
        return list(dict.fromkeys(rank_nodes(spec)))

    def world_size(self, spec: BurninSpec) -> int:
        return spec.nproc

    def command(self, spec: BurninSpec) -> list[str]:
        return [spec.python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                str(spec.nproc), *spec.workload_args()]

    def environment(self, spec: BurninSpec) -> dict[str, str]:
        return {**spec.env(), "CLUSTERCTL_RANK_NODES": ",".join(rank_nodes(spec))}

    def render(self, spec: BurninSpec) -> dict[str, str]:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.environment(spec).items()))
        return {"command.sh": f"cd {shlex.quote(str(spec.workdir))} && {env} {shlex.join(self.command(spec))}\n"}

    def submit(self, spec: BurninSpec) -> Submission:
        out = spec.workdir_out or Path(tempfile.mkdtemp(prefix=f"clusterctl-burnin-{spec.run_id}-"))
        out.mkdir(parents=True, exist_ok=True)
        files = {"stdout": out / "ranks.out", "stderr": out / "ranks.err"}
        mark = new_mark()
        with files["stdout"].open("wb") as stdout, files["stderr"].open("wb") as stderr:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.command(spec), cwd=spec.workdir, env={**os.environ, **self.environment(spec), **mark_env(mark)},
                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True)
        self._procs[str(proc.pid)] = proc
        self._marks[str(proc.pid)] = mark
        return Submission(self.name, str(proc.pid), files=files)

    def watch(self, submission: Submission, deadline: float) -> Outcome:
        proc = self._procs[submission.ref]
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                if code == 0:
                    return Outcome("completed", 0)
                stderr = submission.files["stderr"]
                causes = root_causes([stderr.read_text(errors="replace")]) if stderr.exists() else {}
                return Outcome("failed", code, self._tail(submission), causes)
            time.sleep(POLL_S)
        return Outcome("timeout", None, "the run passed its timeout")

    def collect(self, submission: Submission) -> list[str]:
        path = submission.files["stdout"]
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def cancel(self, submission: Submission) -> None:
        proc = self._procs.get(submission.ref)
        if proc is not None and proc.poll() is None:
            signal_group(proc.pid, signal.SIGTERM)  # torchrun forwards it to the ranks
            try:
                proc.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=KILL_GRACE_S)
        # Also after a run that ended by itself: a hung rank may outlive torchrun, in a session of its own.
        mark = self._marks.pop(submission.ref, None)
        if mark is not None:
            end_marked(mark)

    @staticmethod
    def _tail(submission: Submission) -> str:
        path = submission.files.get("stderr")
        if not path or not path.exists():
            return ""
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()
                 if ln.strip() and not set(ln.strip()) <= set("=-")]
        return lines[-1][:300] if lines else ""

