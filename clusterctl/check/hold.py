"""`check --launcher slurm`: the round runs only on nodes a low-priority Slurm job holds, so it never meets or
delays users' work.

Each node `sinfo` reports idle gets its own job: `--exclusive` on that one node (`-w`), `--nice` so any user's
pending job goes first, a time limit that covers the round. Slurm never preempts for a plain job, and an
exclusive job cannot start beside a running one, so a job that starts proves the node idle at that moment
(the re-check at start); one still pending after `start_timeout_s` means the node got busy between the look
and the submission: it is cancelled and the node skipped. While the jobs hold their nodes the round runs its
parts over SSH as on any launcher; the jobs are cancelled when it ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from clusterctl.check.idle import slurm_states, split_idle
from clusterctl.errors import ClusterctlError
from clusterctl.slurm_commands import run_slurm

JOB_NAME = "clusterctl-check"
NICE = 10_000
CALL_TIMEOUT_S = 30
POLL_S = 0.5


@dataclass
class Holds:
    held: dict[str, str] = field(default_factory=dict)
    """node → the id of the job holding it."""
    skipped: dict[str, str] = field(default_factory=dict)
    """node → why the round leaves it alone (its Slurm state, or busy by the time its job would start)."""
    namespaces: dict[str, str] = field(default_factory=dict)
    """Kubernetes: node → the namespace of the Job holding it."""


def _slurm(args: Sequence[str], slurm_conf: str | None) -> str:
    return run_slurm(args, slurm_conf, prefix="--launcher slurm: ", timeout_s=CALL_TIMEOUT_S)


def hold_command(node: str, minutes: float, partition: str | None) -> list[str]:
    """The sbatch line holding one node (names come validated from the inventory, and no shell reads them)."""
    limit = max(1, int(minutes + 0.999))
    return ["sbatch", "--parsable", "-J", JOB_NAME, f"--nice={NICE}", "--exclusive", "-N", "1", "-w", node,
            *(["-p", partition] if partition else []), f"--time={limit}", "-o", "/dev/null",
            "--wrap", f"sleep {limit * 60}"]


def hold_idle(names: Sequence[str], partitions: dict[str, str | None], *, minutes: float,
              slurm_conf: str | None = None, start_timeout_s: float = 30.0) -> Holds:
    """Hold every idle node among `names` with its own low-priority exclusive job; the rest are skipped."""
    idle, skipped = split_idle(names, slurm_states(names, slurm_conf))
    holds = Holds(skipped=skipped)
    jobs: dict[str, str] = {}
    try:
        for node in idle:
            jobs[node] = _slurm(hold_command(node, minutes, partitions.get(node)), slurm_conf).strip().split(";")[0]
        deadline = time.monotonic() + start_timeout_s
        waiting = dict(jobs)
        while waiting:
            for job_id, state, where in _queue(waiting.values(), slurm_conf):
                mine = next((n for n, j in waiting.items() if j == job_id), None)
                if mine is not None and state == "RUNNING" and where == mine:
                    holds.held[mine] = waiting.pop(mine)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        for node, job_id in waiting.items():
            holds.skipped[node] = f"busy: its hold job {job_id} did not start within {start_timeout_s:g}s"
        if waiting:
            _cancel(waiting.values(), slurm_conf)
    except BaseException:
        _cancel(jobs.values(), slurm_conf)
        raise
    return holds


def _queue(job_ids: Iterable[str], slurm_conf: str | None) -> list[tuple[str, str, str]]:
    out = _slurm(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%N"], slurm_conf)
    return [tuple(line.strip().split("|", 2)) for line in out.splitlines() if line.count("|") == 2]  # type: ignore[misc]


def _cancel(job_ids: Iterable[str], slurm_conf: str | None) -> None:
    ids = [j for j in job_ids if j]
    if ids:
        with contextlib.suppress(ClusterctlError):  # their time limit ends them anyway
            _slurm(["scancel", *ids], slurm_conf)


def release(holds: Holds, slurm_conf: str | None = None) -> None:
    _cancel(holds.held.values(), slurm_conf)
