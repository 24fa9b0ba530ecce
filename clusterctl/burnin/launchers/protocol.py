"""What every burn-in launcher takes, returns and promises, whatever runs the ranks.

The orchestration (`burnin.run`) only speaks this protocol, so a new backend (SSH,
a cloud batch service) is one module with five methods: `render` shows what would be
submitted (the plan, for review or `--dry-run`), `submit` starts it, `watch` follows it
to an end or the deadline, `collect` returns every line the ranks printed, and
`cancel` stops whatever is left. Each step is idempotent enough to be retried.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# The workload ships in the repository beside the package: `python -m workloads.transformer`.
WORKLOAD_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class BurninSpec:
    """One burn-in job as the user asked for it, independent of the backend."""

    run_id: str
    model: str = "transformer-big"
    nodes: tuple[str, ...] = ()
    """Inventory node names, in rank order; empty means "this machine" (local launcher)."""
    nproc: int = 1
    """Processes per node (GPUs per node on real hardware)."""
    steps: int | None = None
    duration_s: float | None = None
    timeout_s: float = 1800.0
    threads: int | None = None
    log_every: int = 10
    checksum_every: int = 50
    stall_timeout_s: float | None = None
    """A rank this long without progress reports where it is stuck (None: the workload's default)."""
    fault: str | None = None
    """CLUSTERCTL_BURNIN_FAULT for every rank: deliberate faults to prove the verdict works."""
    python: str = sys.executable
    workdir: Path = WORKLOAD_ROOT
    workdir_out: Path | None = None
    """Where launchers keep rendered files and rank output; a temporary directory if None."""
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def world_size(self) -> int:
        return max(1, len(self.nodes)) * self.nproc

    def workload_args(self) -> list[str]:
        args = ["-m", "workloads.transformer", "--model", self.model,
                "--log-every", str(self.log_every), "--checksum-every", str(self.checksum_every)]
        if self.steps is not None:
            args += ["--steps", str(self.steps)]
        if self.duration_s is not None:
            args += ["--duration", f"{self.duration_s:g}s"]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.stall_timeout_s is not None:
            args += ["--stall-timeout", f"{self.stall_timeout_s:g}s"]
        return args

    def workload_command(self) -> str:
        return shlex.join(self.workload_args())

    def env(self) -> dict[str, str]:
        # NCCL logs its chosen network at INFO (INIT) and its IB devices (NET); the verdict reads both from the
        # ranks' output to catch a fall-back to sockets. The two subsystems keep the log to a few lines per rank.
        env = {"CLUSTERCTL_RUN": self.run_id, "NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "INIT,NET", **self.extra_env}
        if self.fault:
            env["CLUSTERCTL_BURNIN_FAULT"] = self.fault
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env


@dataclass
class Submission:
    """A handle on a submitted job; `ref` is the backend's id (pid, Slurm job id, Job name)."""

    launcher: str
    ref: str
    files: dict[str, Path] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How the job ended as the backend saw it; rank-level truth comes from the collected lines."""

    state: str  # "completed" | "failed" | "timeout" | "cancelled"
    exit_code: int | None = None
    message: str = ""
    root_causes: dict[int, int] = field(default_factory=dict)
    """Global rank → exit status of the ranks the backend saw fail first (torchrun's summary)."""

    @property
    def ok(self) -> bool:
        return self.state == "completed" and not self.exit_code


class Launcher(Protocol):
    name: str

    def expected_nodes(self, spec: BurninSpec) -> list[str]:
        """The node names the verdict must hear from."""

    def world_size(self, spec: BurninSpec) -> int: ...

    def render(self, spec: BurninSpec) -> dict[str, str]:
        """File name → text of everything `submit` would hand to the backend."""

    def submit(self, spec: BurninSpec) -> Submission: ...

    def watch(self, submission: Submission, deadline: float) -> Outcome:
        """Follow the job until it ends or `time.monotonic()` passes `deadline` (then state "timeout")."""

    def collect(self, submission: Submission) -> list[str]:
        """Every output line of every rank, in no particular order across ranks."""

    def cancel(self, submission: Submission) -> None: ...
