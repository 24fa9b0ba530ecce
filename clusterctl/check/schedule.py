"""What runs a check round on a schedule: a systemd timer and its service, a Slurm `scrontab` entry, or a
Kubernetes CronJob. Rendered only: the operator (or `check schedule` without --print) installs them.

Every value that lands in a unit file, a crontab line or a manifest is checked first: paths and
hostlists may hold only characters that mean nothing to systemd (no `%` specifiers, no quotes, no
spaces), a shell (scrontab runs the line through one) or YAML. Secrets never do: the store's URL comes
from an environment file (systemd), the job's environment (Slurm) or a Secret (Kubernetes).
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from clusterctl.errors import ClusterctlError

SAFE = re.compile(r"^[A-Za-z0-9_./@:+,=\[\]-]+$")
KINDS = ("systemd", "slurm", "kubernetes")


@dataclass(frozen=True)
class Every:
    seconds: int
    cron: str
    """crontab's five fields (scrontab, CronJob)."""
    calendar: str
    """systemd's OnCalendar= for the same instants."""


def parse_every(text: str) -> Every:
    """Intervals that split a day or an hour evenly, so cron and systemd name the same instants."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", text or "")
    if not match:
        raise ClusterctlError(f"--every {text!r}: expected minutes, hours or 1d (examples: 30m, 6h, 1d)")
    n, unit = int(match.group(1)), match.group(2)
    if unit == "m" and n in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30):
        return Every(n * 60, f"*/{n} * * * *", f"*-*-* *:00/{n}:00")
    if unit == "h" and n in (1, 2, 3, 4, 6, 8, 12):
        return Every(n * 3600, f"0 */{n} * * *", f"*-*-* 00/{n}:00:00")
    if (unit == "d" and n == 1) or (unit == "h" and n == 24):
        return Every(86400, "0 0 * * *", "*-*-* 00:00:00")
    raise ClusterctlError(f"--every {text!r}: choose minutes dividing an hour (5m, 15m, 30m), hours dividing a "
                          "day (1h, 2h, 3h, 4h, 6h, 8h, 12h) or 1d")


def _safe(value: str, what: str) -> str:
    if not SAFE.match(value):
        raise ClusterctlError(f"{what} {value!r}: only letters, digits and _./@:+,=[]- may go into a schedule "
                              "(a unit file, crontab line or manifest); rename or move it")
    return value


@dataclass(frozen=True)
class Job:
    inventory: Path
    suite: str
    every: Every
    limit: str | None = None
    program: tuple[str, ...] = ()
    """How to start clusterctl on the machine that runs the schedule [default: this interpreter -m clusterctl]."""

    @property
    def name(self) -> str:
        return f"clusterctl-check-{self.suite}"

    def args(self, inventory: str | None = None) -> list[str]:
        """clusterctl's arguments for one round."""
        args = ["check", inventory or str(self.inventory.resolve()), "--suite", self.suite]
        if self.limit:
            args += ["--limit", self.limit]
        return [_safe(a, "schedule argument") for a in args]

    def argv(self) -> list[str]:
        program = list(self.program) or [sys.executable, "-m", "clusterctl"]
        return [_safe(a, "clusterctl program") for a in program] + self.args()


def systemd_units(job: Job) -> dict[str, str]:
    """{file name: text}: a oneshot service and the timer that starts it (user units: ~/.config/systemd/user)."""
    command = " ".join(job.argv())
    service = f"""[Unit]
Description=clusterctl periodic check, {job.suite} suite
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
# The state store (CLUSTERCTL_STATE) and nothing secret in this file: put them in the environment file.
EnvironmentFile=-%h/.config/clusterctl/check.env
ExecStart={command}
Nice=10
# A round never outlives its interval, so two never overlap.
TimeoutStartSec={job.every.seconds}
"""
    timer = f"""[Unit]
Description=Run {job.name}.service on its schedule

[Timer]
OnCalendar={job.every.calendar}
RandomizedDelaySec={min(300, job.every.seconds // 10)}
Persistent=true
Unit={job.name}.service

[Install]
WantedBy=timers.target
"""
    return {f"{job.name}.service": service, f"{job.name}.timer": timer}


def scrontab(job: Job) -> str:
    """A `scrontab` entry: Slurm runs the round as a job, at low priority, never twice at once. The line goes
    through a shell, so every word is quoted (a hostlist's brackets would glob)."""
    hours, minutes = divmod(max(60, job.every.seconds) // 60, 60)
    return (f"#SCRON --job-name={job.name}\n#SCRON --time={hours:02d}:{minutes:02d}:00\n#SCRON --nice=1000\n"
            f"#SCRON --dependency=singleton\n{job.every.cron} {shlex.join(job.argv())}\n")


def cronjob(job: Job, *, image: str, namespace: str, priority_class: str | None = None) -> str:
    """A CronJob manifest: the inventory from a ConfigMap, the store's URL from a Secret, rounds never overlap."""
    import yaml

    image, namespace = _safe(image, "--image"), _safe(namespace, "--namespace")
    mounted = f"/etc/clusterctl/{_safe(job.inventory.name, 'inventory file name')}"
    pod: dict[str, object] = {
        "restartPolicy": "Never",
        "containers": [{
            "name": "check", "image": image, "command": ["clusterctl"], "args": job.args(mounted),
            "envFrom": [{"secretRef": {"name": "clusterctl-state", "optional": True}}],
            "volumeMounts": [{"name": "inventory", "mountPath": "/etc/clusterctl", "readOnly": True}],
        }],
        "volumes": [{"name": "inventory", "configMap": {"name": "clusterctl-inventory"}}],
    }
    if priority_class:
        pod["priorityClassName"] = _safe(priority_class, "--priority-class")
    manifest = {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": job.name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "clusterctl"}},
        "spec": {
            "schedule": job.every.cron, "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"backoffLimit": 0, "activeDeadlineSeconds": job.every.seconds,
                                     "template": {"spec": pod}}},
        },
    }
    return yaml.safe_dump(manifest, sort_keys=False)


def merge_scrontab(current: str, entry: str, name: str) -> str:
    """The user's scrontab with this job's entry in place of its earlier one (or added); other entries kept.

    An entry is its `#SCRON` option lines and the cron line after them; ours is the one naming our job."""
    kept: list[str] = []
    block: list[str] = []
    for line in current.splitlines():
        block.append(line)
        if line.startswith("#SCRON"):
            continue
        if not any(opt.strip() == f"#SCRON --job-name={name}" for opt in block):
            kept += block
        block = []
    kept += [line for line in block if line.strip() != f"#SCRON --job-name={name}"]
    return "\n".join([*kept, *entry.rstrip("\n").splitlines()]) + "\n"


def install_scrontab(entry: str, name: str, slurm_conf: str | None = None) -> None:
    """Install through `scrontab FILE` (scrontab replaces the user's whole table, so it is read and merged first)."""
    import os
    import subprocess
    import tempfile

    env = {**os.environ, **({"SLURM_CONF": slurm_conf} if slurm_conf else {})}

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(["scrontab", *args], env=env, capture_output=True, text=True,  # noqa: S603,S607
                                  timeout=30, check=False)
        except FileNotFoundError:
            raise ClusterctlError("scrontab is not installed on this machine (Slurm 20.11 or later ships it); "
                                  "install the entry on a Slurm login node, or use --print") from None

    listed = call("-l")
    # No table yet is not an error: scrontab says so and exits non-zero.
    current = listed.stdout if listed.returncode == 0 else ""
    with tempfile.NamedTemporaryFile("w", suffix=".scrontab", delete=False, encoding="utf-8") as handle:
        handle.write(merge_scrontab(current, entry, name))
    try:
        done = call(handle.name)
    finally:
        os.unlink(handle.name)
    if done.returncode:
        raise ClusterctlError(f"scrontab refused the entry: {(done.stderr or done.stdout).strip()[-300:]}")
