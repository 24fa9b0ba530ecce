"""Burn-in through Slurm: an sbatch script (one task per node, torchrun in each), followed to its end.

The job is followed with `scontrol show job` (state and exit code), which needs no
accounting database; `sacct` is asked only once the controller has forgotten the job
(MinJobAge). Every call passes the configured SLURM_CONF, so one machine can drive a
cluster other than its default. Polling is bounded by the run's deadline.

Each task first checks its node's burn-in runtime (`clusterctl.burnin.runtime`), as a prolog would: a node
without this controller's runtime ends its task with a line that `watch` turns into that node's launch error,
naming the command that installs it.

The job runs the scripts written into the output directory, so that directory must be the
user's and writable by no one else, and the scripts are written so that nothing planted there
beforehand (a symlink, say) can redirect them. Every node reads the scripts there and writes
its ranks' output there, which this machine then reads: so the directory must be on a filesystem
the nodes share (checked before submitting), unless the nodes run on this machine.

With a container image (sites with NVIDIA's pyxis plugin) each task runs inside it:
`srun --container-image`, the output directory mounted at the same path, and the image's Python
and workload (`clusterctl burnin image build`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from clusterctl.burnin.launchers.protocol import BurninSpec, Outcome, Submission
from clusterctl.burnin.launchers.torchrun import root_causes
from clusterctl.burnin.runtime import Runtime, fix_command
from clusterctl.burnin.templates import render
from clusterctl.errors import ClusterctlError
from clusterctl.slurm_commands import call_slurm, run_slurm

POLL_S = 1.0
SCRIPT_MODES = {"burnin.sbatch": 0o600, "task.sh": 0o700}
COMMAND_TIMEOUT_S = 30
# Filesystems every node of a cluster can mount at one path (network and parallel filesystems).
SHARED_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "fuse.ceph", "glusterfs", "fuse.glusterfs",
    "cifs", "smb3", "panfs", "wekafs", "fuse.weka", "pvfs2", "orangefs", "fuse.juicefs", "virtiofs"})
RUNNING = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING",
           "STAGE_OUT"}
RUNTIME_MARKER = "clusterctl-runtime"


class SlurmError(ClusterctlError):
    """sbatch/scontrol failed or is missing."""


class SlurmLauncher:
    name = "slurm"

    def __init__(self, slurm_conf: str | None = None, partition: str | None = None,
                 gpus_per_node: int | None = None, rdzv_port: int | None = None,
                 container_image: str | None = None, inventory: str | None = None,
                 runtime: Runtime | None = None) -> None:
        self.inventory = inventory
        self.runtime = runtime or Runtime.this_release()
        self.slurm_conf = slurm_conf
        self.partition = partition
        self.gpus_per_node = gpus_per_node
        self.rdzv_port = rdzv_port
        self.container_image = container_image

    def expected_nodes(self, spec: BurninSpec) -> list[str]:
        if not spec.nodes:
            raise ClusterctlError("the slurm launcher needs the nodes to burn in: --nodes (and an inventory)")
        return list(spec.nodes)

    def world_size(self, spec: BurninSpec) -> int:
        return len(self.expected_nodes(spec)) * spec.nproc

    # -- protocol ----------------------------------------------------------------------------------------

    def render(self, spec: BurninSpec, outdir: Path | None = None) -> dict[str, str]:
        from clusterctl.inventory.hostlist import fold

        nodes = self.expected_nodes(spec)
        outdir = outdir or spec.workdir_out or Path("/tmp/clusterctl-burnin")  # noqa: S108 - shown only
        limit_min = max(1, math.ceil(spec.timeout_s / 60))
        values: dict[str, Any] = {
            "run_id": spec.run_id, "nodes": nodes, "nodelist": fold(nodes), "partition": self.partition,
            "gpus_per_node": self.gpus_per_node, "time_limit": limit_min, "outdir": str(outdir),
            "rdzv_port": self.rdzv_port, "env": spec.env(), "nproc": spec.nproc, "workload": spec.workload_command(),
            "container_image": self.container_image, "workdir": str(spec.workdir), "python": spec.python,
            "runtime_dir": self.runtime.directory, "runtime_version": self.runtime.version,
            "runtime_checksum": self.runtime.checksum, "runtime_marker": RUNTIME_MARKER,
            "runtime_problem": f"no burn-in runtime of clusterctl {self.runtime.version} with this workload at "
                               f"{self.runtime.directory}; install it with: "
                               + fix_command(self.inventory),
        }
        return {"burnin.sbatch": render("sbatch.sh.j2", **values), "task.sh": render("task.sh.j2", **values)}

    def submit(self, spec: BurninSpec) -> Submission:
        if spec.workdir_out is None:
            outdir = Path(tempfile.mkdtemp(prefix=f"clusterctl-burnin-{spec.run_id}-"))  # 0700
        else:
            outdir = _private_outdir(spec.workdir_out)
        self.check_shared(outdir, self.expected_nodes(spec))
        files = {}
        for name, text in self.render(spec, outdir).items():
            files[name] = outdir / name
            _write_script(files[name], text, SCRIPT_MODES.get(name, 0o600))
        out = self._run(["sbatch", "--parsable", str(files["burnin.sbatch"])])
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {out.strip()!r}, not a job id")
        return Submission(self.name, job_id, files={"outdir": outdir, **files})

    def watch(self, submission: Submission, deadline: float) -> Outcome:
        while time.monotonic() < deadline:
            state, code, reason = self.state(submission.ref)
            if state and state not in RUNNING:
                if state == "COMPLETED" and code == 0:
                    return Outcome("completed", 0)
                paths = sorted(Path(submission.files["outdir"]).glob(f"rank-{submission.ref}-*.err"))
                errors = {p.name: p.read_text(errors="replace") for p in paths}
                if refused := _runtime_refusals(errors.values()):
                    submission.detail["launch_errors"] = refused
                # The last words of each task that said anything: the job's own account of why it failed.
                last = [f"{name}: {text.strip().splitlines()[-1][:200]}" for name, text in errors.items()
                        if text.strip()][:3]
                message = " ".join([f"Slurm job {submission.ref} {state} (exit {code})", reason, *last])
                return Outcome("cancelled" if state == "CANCELLED" else "failed", code, message.strip(),
                               root_causes(errors.values()))
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        return Outcome("timeout", None, f"Slurm job {submission.ref} passed the run's timeout")

    def collect(self, submission: Submission) -> list[str]:
        outdir = Path(submission.files["outdir"])
        lines: list[str] = []
        for path in sorted(outdir.glob(f"rank-{submission.ref}-*.out")):
            lines.extend(path.read_text(errors="replace").splitlines())
        return lines

    def cancel(self, submission: Submission) -> None:
        state, _, _ = self.state(submission.ref)
        if state in RUNNING:
            self._run(["scancel", submission.ref])
            deadline = time.monotonic() + COMMAND_TIMEOUT_S
            while self.state(submission.ref)[0] in RUNNING and time.monotonic() < deadline:
                time.sleep(POLL_S)

    def check_shared(self, outdir: Path, nodes: list[str]) -> None:
        """Refuse an output directory on a filesystem of this machine alone when a node runs elsewhere:
        the job would find no scripts there, and this machine no rank output."""
        mount, fstype = filesystem_of(outdir)
        if fstype in SHARED_FILESYSTEMS:
            return
        here = {_short(socket.gethostname()), _short(socket.getfqdn()), "localhost"}
        hosts = self.node_hosts(nodes)
        away = [n for n in nodes if _short(hosts.get(n, "?")) not in here]
        if away:
            from clusterctl.inventory.hostlist import fold

            where = hosts.get(away[0]) or "a host Slurm does not name"
            raise SlurmError(
                f"the burn-in output directory {outdir} is on {fstype} ({mount}), a filesystem of this machine, "
                f"but {fold(away)} run elsewhere ({away[0]} on {where}): every node reads the job's scripts and "
                "writes its ranks' output there. Give --outdir on a filesystem the nodes share at the same path "
                "(NFS, Lustre, GPFS, BeeGFS, CephFS...)")

    def node_hosts(self, nodes: list[str]) -> dict[str, str]:
        """Slurm node name → the host its slurmd runs on (NodeHostName)."""
        from clusterctl.inventory.hostlist import fold

        proc = self._call(["scontrol", "show", "node", "-o", fold(nodes)])
        hosts = {}
        for line in proc.stdout.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "NodeName" in fields:
                hosts[fields["NodeName"]] = fields.get("NodeHostName") or fields.get("NodeAddr") or ""
        return hosts

    # -- Slurm commands ----------------------------------------------------------------------------------

    def state(self, job_id: str) -> tuple[str | None, int | None, str]:
        """(JobState, exit code of the batch script, Reason) — from scontrol, else sacct."""
        proc = self._call(["scontrol", "show", "job", "-o", job_id])
        if proc.returncode == 0 and proc.stdout.strip():
            fields = dict(f.split("=", 1) for f in proc.stdout.split() if "=" in f)
            state = fields.get("JobState")
            code = fields.get("ExitCode", "")
            reason = fields.get("Reason", "None")
            return state, _exit_code(code), "" if reason == "None" else reason
        proc = self._call(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,ExitCode"])
        if proc.returncode == 0 and proc.stdout.strip():
            state, code = proc.stdout.strip().splitlines()[0].split("|")[:2]
            return state.split()[0], _exit_code(code), ""
        return None, None, ""

    def _call(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return call_slurm(args, self.slurm_conf, error=SlurmError, timeout_s=COMMAND_TIMEOUT_S)

    def _run(self, args: list[str]) -> str:
        return run_slurm(args, self.slurm_conf, error=SlurmError, timeout_s=COMMAND_TIMEOUT_S)


def _private_outdir(path: Path) -> Path:
    """The output directory, made 0700 if it is new; an existing one must be the user's and writable by
    no one else, since whoever can write in it can change the scripts the job runs as the user."""
    path = path.expanduser().absolute()
    if not path.exists():
        try:
            path.mkdir(parents=True, mode=0o700)
            os.chmod(path, 0o700)  # whatever the umask
        except FileExistsError:
            pass  # made meanwhile: checked below like any other
        except OSError as exc:
            raise ClusterctlError(f"cannot create the burn-in output directory {path}: {exc.strerror}") from exc
    link, info = os.lstat(path), os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise ClusterctlError(f"the burn-in output directory {path} is not a directory")
    me = os.geteuid()
    for owner in {link.st_uid, info.st_uid}:
        if owner != me:
            raise ClusterctlError(f"the burn-in output directory {path} belongs to uid {owner}, not to you (uid {me}): "
                                  "Slurm runs the scripts written there, so choose a directory of your own (--outdir)")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ClusterctlError(f"the burn-in output directory {path} is writable by others, who could change the "
                              f"scripts Slurm runs as you: chmod 700 {path}, or choose another --outdir")
    return path


def _write_script(path: Path, text: str, mode: int) -> None:
    """Write `path` through a new file that replaces it: a symlink planted there is replaced, never followed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _short(host: str) -> str:
    return host.split(".", 1)[0]


def filesystem_of(path: Path, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, str]:
    """(mount point, filesystem type) of the mount holding `path`: the longest mount point above it."""
    target = os.path.realpath(path)
    best = ("/", "unknown")
    try:
        text = Path(mountinfo).read_text()
    except OSError:
        return best
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        # Spaces and other odd characters in mount points are written as octal escapes (\040).
        mount = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[0]):
            best = (mount, right.split()[0])
    return best


def _exit_code(text: str) -> int | None:
    """Slurm's ExitCode is `code:signal`; a signal counts as failure (128 + signal)."""
    try:
        code, _, sig = text.partition(":")
        return int(code) or (128 + int(sig) if sig and int(sig) else 0)
    except ValueError:
        return None


def _runtime_refusals(texts: Any) -> dict[str, str]:
    """Node → its task's runtime check failure (the `clusterctl-runtime: NODE: ...` line task.sh prints)."""
    found = {}
    for text in texts:
        for line in text.splitlines():
            if line.startswith(f"{RUNTIME_MARKER}: "):
                node, _, why = line[len(RUNTIME_MARKER) + 2:].partition(": ")
                found[node] = why.strip()
    return found
