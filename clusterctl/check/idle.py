"""Which selected nodes are idle in Slurm: a check round never touches a node that runs users' work.

`sinfo` reports each node's state; only `idle` passes. `mixed`, `allocated`, `completing`, drained,
down or reserved nodes are left out with their state as the reason. A node Slurm does not know is
left out too: the round cannot tell whether it is busy. The quick suite only reads counters, so the
moment between this look and the round is harmless; the standard suite's all-reduce loads the GPUs and
needs the nodes held by a job: `--launcher slurm` (clusterctl/check/hold.py).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from clusterctl.errors import ClusterctlError

SINFO_TIMEOUT_S = 30


def slurm_states(names: Sequence[str], slurm_conf: str | None = None) -> dict[str, str]:
    """{node: Slurm's long state name} for the nodes Slurm knows among `names`."""
    env = dict(os.environ)
    if slurm_conf:
        env["SLURM_CONF"] = slurm_conf
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%T"],  # noqa: S603,S607 - no shell, fixed words
                              env=env, capture_output=True, text=True, timeout=SINFO_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise ClusterctlError("--idle-from slurm: sinfo is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise ClusterctlError(f"--idle-from slurm: sinfo did not answer within {SINFO_TIMEOUT_S}s") from None
    if proc.returncode:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise ClusterctlError(f"--idle-from slurm: sinfo: {lines[-1] if lines else f'exit {proc.returncode}'}")
    wanted = set(names)
    states: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        node, _, state = line.strip().partition("|")
        if node in wanted:
            # A node in two partitions is listed twice with one state; a suffix (`idle*`, `idle~`) means
            # not responding or powered down: not idle.
            states[node] = state.strip().lower()
    return states


def split_idle(names: Sequence[str], states: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(the idle nodes in order, {left-out node: why})."""
    idle = [n for n in names if states.get(n) == "idle"]
    skipped = {n: states.get(n, "unknown to Slurm") for n in names if states.get(n) != "idle"}
    return idle, skipped
