"""Slurm's client commands (sinfo, squeue, sbatch, scontrol, scancel, sacct), as the burn-in launcher, its
quarantine, check rounds and their idle-node holds run them: no shell, the configured SLURM_CONF, this
process's secrets masked (sbatch forwards the environment into the job and slurmctld's saved state), and
every failure (not installed, no answer, a non-zero exit) one line naming the command, so a broken Slurm
never ends in a traceback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from clusterctl import log
from clusterctl.errors import ClusterctlError

TIMEOUT_S = 30


def call_slurm(argv: Sequence[str], slurm_conf: str | None, *, error: type[ClusterctlError] = ClusterctlError,
               prefix: str = "", timeout_s: int = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """The finished command, whatever its exit (for callers that read a refusal, e.g. an unknown job);
    `error` only when it cannot be run at all."""
    env = dict(os.environ) | log.masked_environment()
    if slurm_conf:
        env["SLURM_CONF"] = slurm_conf
    try:
        return subprocess.run(list(argv), env=env, capture_output=True, text=True,  # noqa: S603 - no shell
                              timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise error(f"{prefix}{argv[0]} is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise error(f"{prefix}{argv[0]} did not answer within {timeout_s}s") from None


def run_slurm(argv: Sequence[str], slurm_conf: str | None, *, error: type[ClusterctlError] = ClusterctlError,
              prefix: str = "", what: str | None = None, timeout_s: int = TIMEOUT_S) -> str:
    """The command's standard output; `error(prefix + reason)` when it cannot be run or fails (`what`, the
    command's name by default, leads the reason of a failed exit)."""
    proc = call_slurm(argv, slurm_conf, error=error, prefix=prefix, timeout_s=timeout_s)
    if proc.returncode:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise error(f"{prefix}{what or argv[0]}: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout
