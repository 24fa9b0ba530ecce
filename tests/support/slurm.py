"""A real Slurm cluster of several nodes on this one machine, for tests.

Everything lives under a temporary directory: its own munge key and munged socket, a
slurm.conf with private ports, state, spool and logs. Every node name maps to this host
(NodeAddr 127.0.0.1) with its own slurmd port, so jobs really run through slurmctld,
slurmd and srun. Client commands find the cluster through `env` (SLURM_CONF).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from support.ports import ephemeral_ports

SLURMCTLD = shutil.which("slurmctld") or "/usr/sbin/slurmctld"
SLURMD = shutil.which("slurmd") or "/usr/sbin/slurmd"
MUNGED = shutil.which("munged") or "/usr/sbin/munged"
START_TIMEOUT_S = 30


def available() -> str | None:
    """None when a cluster can be started here, else why not (for pytest.skip)."""
    for tool in (SLURMCTLD, SLURMD, MUNGED):
        if not Path(tool).exists():
            return f"{tool} is not installed (Debian: slurm-wlm, munge)"
    if os.geteuid() != 0:
        return "the test Slurm cluster runs its daemons as root (SlurmUser=root)"
    return None


class SlurmCluster:
    """`SlurmCluster(tmp, ["node1", "node2"])` starts munged, slurmctld and one slurmd per node."""

    def __init__(self, workdir: Path, nodes: list[str], partition: str = "burnin") -> None:
        self.workdir = workdir
        self.nodes = nodes
        self.partition = partition
        self._procs: list[subprocess.Popen[bytes]] = []
        for sub in ("munge", "state", "spool", "log"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        (workdir / "munge").chmod(0o700)
        self.munge_socket = workdir / "munge" / "munge.socket"
        self.conf = workdir / "slurm.conf"
        try:
            self._start_munge()
            self._write_conf()
            self._start_daemons()
            self.wait_idle()
        except BaseException:
            self.stop()
            raise

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=30, check=False)
        if check and proc.returncode:
            raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def node_states(self) -> dict[str, str]:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t")
        return dict(line.split() for line in out.splitlines() if line.strip())

    def drain_reasons(self) -> dict[str, str]:
        out = self.run("sinfo", "-h", "-R", "-N", "-o", "%N|%E")
        return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)

    def wait_idle(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until every node is idle and responding (a resumed node shows `idle*` until slurmctld pings it)."""
        deadline = time.monotonic() + timeout_s
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                states = self.node_states()
            except RuntimeError:
                states = {}
            if states and all(states.get(n) == "idle" for n in self.nodes):
                return
            time.sleep(0.5)
        logs = "\n".join(p.read_text()[-1500:] for p in (self.workdir / "log").glob("*.log"))
        raise RuntimeError(f"Slurm nodes not idle after {timeout_s}s: {states}\n{logs}")

    def _spawn(self, args: list[str], log: str) -> None:
        out = (self.workdir / "log" / log).open("wb")
        self._procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                            stdin=subprocess.DEVNULL, start_new_session=True))

    def _start_munge(self) -> None:
        key = self.workdir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        d = self.workdir / "munge"
        self._spawn([MUNGED, "--foreground", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
                     f"--pid-file={d / 'munged.pid'}", f"--seed-file={d / 'munged.seed'}",
                     f"--log-file={d / 'munged.log'}"], "munged.out")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.munge_socket.exists():
            if time.monotonic() > deadline or self._procs[-1].poll() is not None:
                raise RuntimeError(f"munged did not start: {(self.workdir / 'log' / 'munged.out').read_text()}")
            time.sleep(0.1)

    def _write_conf(self) -> None:
        ctld_port, *node_ports = ephemeral_ports(1 + len(self.nodes))
        host = socket.gethostname()
        w = self.workdir
        lines = [
            "ClusterName=clusterctltest", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={ctld_port}",
            "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge", "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none",
            "SlurmdParameters=config_overrides", "ReturnToService=2", "MinJobAge=600",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none", "SchedulerType=sched/backfill", "SlurmctldTimeout=30",
            "SlurmdTimeout=60", "InactiveLimit=0", "KillWait=5", "MessageTimeout=20",
            f"StateSaveLocation={w / 'state'}", f"SlurmdSpoolDir={w / 'spool'}/%n",
            f"SlurmctldPidFile={w / 'slurmctld.pid'}", f"SlurmdPidFile={w / 'spool'}/slurmd-%n.pid",
            f"SlurmctldLogFile={w / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={w / 'log'}/slurmd-%n.log",
            f"PlugStackConfig={w / 'plugstack.conf'}", f"TaskProlog={self._task_prolog()}",
        ]
        for name, port in zip(self.nodes, node_ports, strict=True):
            lines.append(f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs=2 "
                         "RealMemory=1000 State=UNKNOWN")
        lines.append(f"PartitionName={self.partition} Nodes={','.join(self.nodes)} Default=YES "
                     "MaxTime=INFINITE State=UP")
        (w / "plugstack.conf").write_text("")
        self.conf.write_text("\n".join(lines) + "\n")

    def root(self, node: str) -> Path:
        """The node's own root (CLUSTERCTL_ROOT in its tasks), holding its burn-in runtime."""
        return self.workdir / "roots" / node

    def _task_prolog(self) -> Path:
        """Slurm's TaskProlog sets a task's environment from the node it runs on (its `export` lines): here each
        node's CLUSTERCTL_ROOT, where a burn-in runtime is laid out as the runtime role would leave one."""
        from clusterctl.burnin.runtime import lay_out

        for node in self.nodes:
            lay_out(self.root(node), sys.executable)
        prolog = self.workdir / "task-prolog.sh"
        prolog.write_text(f'#!/bin/sh\necho "export CLUSTERCTL_ROOT={self.workdir / "roots"}/$SLURMD_NODENAME"\n')
        prolog.chmod(0o755)
        return prolog

    def _start_daemons(self) -> None:
        self._spawn([SLURMCTLD, "-D", "-i", "-f", str(self.conf)], "slurmctld.out")
        for name in self.nodes:
            (self.workdir / "spool" / name).mkdir(exist_ok=True)
            self._spawn([SLURMD, "-D", "-N", name, "-f", str(self.conf)], f"slurmd-{name}.out")

    def stop(self) -> None:
        """Stop every daemon this cluster started (slurmds, slurmctld, then munged)."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
