"""The burn-in runtime a node needs before a launcher may start ranks on it, and the check that it is there.

The runtime is what the `burnin_runtime` role installs (playbooks/roles/burnin_runtime): a virtual
environment with PyTorch and nvidia-ml-py, and this release's `workloads/` package, in a directory
named after clusterctl's version (two versions coexist while a fleet moves from one to the next),
with a manifest (`runtime.json`) that records the version and a checksum of the workload files.
This module is the one place that knows the layout: the role gets it as extra variables, the
launchers take the python and the workdir from it, and `check` asks every node in one SSH round
whether its manifest matches this controller, so a node without it fails at once with the command
that installs it instead of a torchrun traceback minutes into the job.

A node may report that its files live under another root (`CLUSTERCTL_ROOT` in its environment, as the
os stage's playbooks honour it); the check and the Slurm task look there.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterctl import __version__

if TYPE_CHECKING:
    from clusterctl.ssh.target import SSHTarget

BASE = "/opt/clusterctl/burnin"
MANIFEST = "runtime.json"
FORMAT = "clusterctl-runtime/v1"
# The workload ships beside the package: this checkout's (or this installation's) workloads/.
WORKLOAD_ROOT = Path(__file__).resolve().parents[2]
CHECK_TIMEOUT_S = 30.0


def directory(version: str = __version__) -> str:
    return f"{BASE}/{version}"


@cache
def workload_files() -> tuple[str, ...]:
    """The workload's source files, relative to WORKLOAD_ROOT: exactly what the role copies and the checksum covers."""
    package = WORKLOAD_ROOT / "workloads"
    found = sorted(p.relative_to(WORKLOAD_ROOT).as_posix() for p in package.rglob("*.py")
                   if "__pycache__" not in p.parts)
    if not found:
        raise FileNotFoundError(f"no workload files under {package}")
    return tuple(found)


@cache
def workload_checksum() -> str:
    """sha256 over each file's name and sha256, so a renamed file changes it as an edited one does."""
    digest = hashlib.sha256()
    for name in workload_files():
        digest.update(f"{name}\0{hashlib.sha256((WORKLOAD_ROOT / name).read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Runtime:
    """The runtime this controller launches: where it lives on the nodes and what its manifest must say."""

    version: str = __version__
    checksum: str = ""

    @classmethod
    def this_release(cls) -> Runtime:
        return cls(__version__, workload_checksum())

    @property
    def directory(self) -> str:
        return directory(self.version)

    @property
    def python(self) -> str:
        return f"{self.directory}/bin/python"

    @property
    def workdir(self) -> str:
        """Holds `workloads/`: the ranks' working directory and PYTHONPATH."""
        return f"{self.directory}/src"

    def manifest(self, torch: str | None = None) -> dict[str, Any]:
        return {"format": FORMAT, "clusterctl": self.version, "workloads_sha256": self.checksum,
                "python": self.python, "workdir": self.workdir, "torch": torch}

    def problem(self, manifest: Mapping[str, Any] | None) -> str | None:
        """Why a node's manifest does not serve this controller (None: it does)."""
        if not manifest:
            return f"no burn-in runtime for clusterctl {self.version} at {self.directory}"
        if manifest.get("clusterctl") != self.version:
            return f"the burn-in runtime at {self.directory} is for clusterctl {manifest.get('clusterctl')}"
        if manifest.get("workloads_sha256") != self.checksum:
            return (f"the workload files of the burn-in runtime at {self.directory} differ from this controller's "
                    f"(checksum {str(manifest.get('workloads_sha256'))[:12]}, expected {self.checksum[:12]})")
        return None

    def check_script(self) -> str:
        """A POSIX shell script that prints where the node keeps the runtime (its root's, see the module's
        doc) on one line, then its manifest, or `{}` when the runtime is absent."""
        where = shlex.quote(self.directory)
        return (f'r="${{CLUSTERCTL_ROOT:-}}"; r="${{r%/}}"{where}; printf "%s\\n" "$r"; '
                f'if [ -x "$r/bin/python" ] && [ -f "$r/{MANIFEST}" ]; then cat "$r/{MANIFEST}"; else echo "{{}}"; fi')

    def extra_vars(self) -> dict[str, Any]:
        """What the role needs from the controller: trusted values, computed here, never from the inventory."""
        return {"clusterctl_burnin_runtime": {
            "version": self.version, "dir": self.directory, "workloads_sha256": self.checksum,
            "src": str(WORKLOAD_ROOT), "files": list(workload_files())}}


def fix_command(inventory: str | None, node: str = "") -> str:
    """The command that installs the runtime on `node`; without a node, its start, for the node to be appended."""
    where = shlex.quote(inventory) if inventory else "FILE"
    return f"clusterctl provision {where} --stages runtime --limit {shlex.quote(node) if node else ''}"


@dataclass(frozen=True)
class Checked:
    homes: dict[str, str]
    """Node → the directory its runtime is in, for the nodes that have this controller's."""
    problems: dict[str, str]
    """Node → why its runtime cannot run the burn-in, with the command that fixes it."""
    errors: dict[str, tuple[str | None, str]]
    """Node → (error type, message) of the SSH command that could not ask it."""


def check(targets: Mapping[str, SSHTarget], runtime: Runtime, *, inventory: str | None,
          max_parallel: int = 64) -> Checked:
    """Ask every node for its runtime: one SSH command per node, `max_parallel` connecting at a time.

    asyncssh from one thread, as the launch itself: a thousand nodes take a few seconds, 12,500 a few
    minutes (the SSH handshakes are the controller's CPU). Each command has CHECK_TIMEOUT_S from its own
    start, and the wait lasts as long as `max_parallel` at a time could need if every node took its
    connect and command timeouts in full, so a slow fan-out is never cut off and a dead one still ends."""
    from clusterctl.ssh.longrun import LongRuns

    runs = LongRuns(max_starting=max_parallel)
    argv = ["sh", "-c", runtime.check_script()]
    runs.start([(target, argv, None) for target in targets.values()], timeout=CHECK_TIMEOUT_S)
    rounds = -(-len(targets) // max(1, max_parallel))
    try:
        runs.wait(rounds * (runs.connect_timeout + CHECK_TIMEOUT_S) + 10)
        answers = runs.snapshot()
    finally:
        runs.stop()
    checked = Checked({}, {}, {})
    for node, run in answers.items():
        if run.error is not None or run.state != "done" or run.exit_status:
            why = run.error or (f"the check ended with status {run.exit_status}" if run.exit_status
                                else "the check did not finish")
            checked.errors[node] = (run.error_type, why)
            continue
        home, _, text = run.stdout.decode(errors="replace").strip().partition("\n")
        try:
            manifest = json.loads(text)
        except ValueError:
            manifest = None
        problem = runtime.problem(manifest if isinstance(manifest, dict) else None)
        if problem:
            checked.problems[node] = f"{problem}; install it with: {fix_command(inventory, node)}"
        else:
            checked.homes[node] = home.strip()
    return checked


def lay_out(root: Path, python: str, runtime: Runtime | None = None) -> Path:
    """A runtime under `root` whose interpreter is `python` and whose workload is this checkout's (linked,
    not copied): what the embedded lab's nodes and the tests' stand-in nodes have instead of the role's
    virtual environment, checked by the same SSH command as a real node's."""
    runtime = runtime or Runtime.this_release()
    home = root / runtime.directory.lstrip("/")
    (home / "bin").mkdir(parents=True, exist_ok=True)
    (home / "src").mkdir(exist_ok=True)
    # A wrapper, not a symlink: Python finds its virtual environment from the path it was started by.
    _write(home / "bin" / "python", f"#!/bin/sh\nexec {shlex.quote(python)} \"$@\"\n", 0o755)
    link = home / "src" / "workloads"
    if not link.is_symlink():
        link.symlink_to(WORKLOAD_ROOT / "workloads")
    _write(home / MANIFEST, json.dumps(runtime.manifest(), sort_keys=True) + "\n", 0o644)
    return home


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)
