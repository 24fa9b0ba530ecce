"""Which selected nodes are idle in Slurm: a check round never touches a node that runs users' work.

`sinfo` reports each node's state; only `idle` passes. `mixed`, `allocated`, `completing`, drained,
down or reserved nodes are left out with their state as the reason. A node Slurm does not know is
left out too: the round cannot tell whether it is busy. The quick suite only reads counters, so the
moment between this look and the round is harmless; the standard suite's all-reduce loads the GPUs and
needs the nodes held by a job: `--launcher slurm` (clusterctl/check/hold.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from clusterctl.slurm_commands import run_slurm

SINFO_TIMEOUT_S = 30


def slurm_states(names: Sequence[str], slurm_conf: str | None = None) -> dict[str, str]:
    """{node: Slurm's long state name} for the nodes Slurm knows among `names`."""
    out = run_slurm(["sinfo", "-h", "-N", "-o", "%N|%T"], slurm_conf, prefix="--idle-from slurm: ",
                    timeout_s=SINFO_TIMEOUT_S)
    wanted = set(names)
    states: dict[str, str] = {}
    for line in out.splitlines():
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
