"""Burn-in launchers behind one protocol (see `protocol`), picked by name.

Each backend module is imported only when chosen, so `kubernetes` loads only for
`--launcher kubernetes`.
"""

from __future__ import annotations

from typing import Any

from clusterctl.burnin.launchers.protocol import BurninSpec, Launcher, Outcome, Submission
from clusterctl.errors import ClusterctlError

NAMES = ("local", "ssh", "slurm", "kubernetes")

__all__ = ["NAMES", "BurninSpec", "Launcher", "Outcome", "Submission", "create"]


def create(name: str, **options: Any) -> Launcher:
    """The launcher called `name`, configured with its backend's options (slurm_env, kube_client...)."""
    if name == "local":
        from clusterctl.burnin.launchers.local import LocalLauncher

        return LocalLauncher()
    if name == "slurm":
        from clusterctl.burnin.launchers.slurm import SlurmLauncher

        return SlurmLauncher(**options)
    if name == "kubernetes":
        from clusterctl.burnin.launchers.kubernetes import KubernetesLauncher

        return KubernetesLauncher(**options)
    if name == "ssh":
        from clusterctl.burnin.launchers.ssh import SSHLauncher

        return SSHLauncher(**options)
    raise ClusterctlError(f"unknown launcher {name!r}; choose one of {', '.join(NAMES)}")
