"""The burn-in container image: its build context, written from the installed `workloads` package.

The context holds the recipes (Containerfile for docker/podman, burnin.def for Apptainer), the
workload's files as the installed package has them, and their sha256 list that the build checks.
Nothing in the repository is a second copy of workloads/ to keep in sync: the files come from
the package this clusterctl runs (importlib.resources), so the image holds exactly its release.
Inside the image the workload lives at WORKDIR, and launchers that use the image (Kubernetes,
Slurm with pyxis) run PYTHON there.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from clusterctl import __version__
from clusterctl.errors import ClusterctlError
from clusterctl.inventory.models import IMAGE_REF

WORKDIR = "/opt/clusterctl"
PYTHON = "python"
DEFAULT_TAG = f"clusterctl-burnin:{__version__}"
ENGINES = ("docker", "podman", "apptainer")
RECIPES = {"docker": "Containerfile", "podman": "Containerfile", "apptainer": "burnin.def"}
BUILD_TIMEOUT_S = 2 * 3600  # pulling a 10 GB base image over a slow mirror takes long, but not forever


def _walk(node: Traversable, prefix: str) -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in node.iterdir():
        path = f"{prefix}/{entry.name}"
        if entry.is_dir():
            if entry.name != "__pycache__":
                found.update(_walk(entry, path))
        elif not entry.name.endswith((".pyc", ".pyo")):
            found[path] = entry
    return found


def workload_files() -> dict[str, Traversable]:
    """Path in the context (workloads/...) → the installed package's file."""
    return dict(sorted(_walk(resources.files("workloads"), "workloads").items()))


def checked_ref(value: str, option: str) -> str:
    if not IMAGE_REF.match(value):
        raise ClusterctlError(f"{option}: {value[:80]!r} is not an image reference such as "
                              f"registry.example/clusterctl-burnin:{__version__}")
    return value


def write_context(dest: Path) -> list[str]:
    """Write the build context into `dest` (created); the paths written, relative to it."""
    dest.mkdir(parents=True, exist_ok=True)
    recipes = resources.files("clusterctl.burnin") / "recipes"
    written = []
    for name in sorted(set(RECIPES.values())):
        (dest / name).write_bytes((recipes / name).read_bytes())
        written.append(name)
    sums = []
    for path, source in workload_files().items():
        data = source.read_bytes()
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(path)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {path}\n")
    (dest / "workloads.sha256").write_text("".join(sums))
    written.append("workloads.sha256")
    return written


@dataclass(frozen=True)
class Command:
    argv: list[str]
    cwd: Path


def build_command(engine: str, context: Path, tag: str, base: str | None) -> Command:
    """The engine's build command line for `context` (no shell: a list of arguments)."""
    if engine not in ENGINES:
        raise ClusterctlError(f"--engine: unknown {engine!r}; choose one of {', '.join(ENGINES)}")
    checked_ref(tag, "--tag")
    args = [] if base is None else ["--build-arg", f"BASE_IMAGE={checked_ref(base, '--base')}"]
    if engine == "apptainer":
        # %files sources are relative to where the build runs: the context.
        sif = tag.rsplit("/", 1)[-1].replace(":", "_") + ".sif"
        return Command(["apptainer", "build", *args, sif, RECIPES[engine]], context)
    return Command([engine, "build", "--file", str(context / RECIPES[engine]), *args,
                    "--build-arg", f"CLUSTERCTL_VERSION={__version__}", "--tag", tag, str(context)], context)


def push_command(engine: str, tag: str) -> Command:
    if engine not in ("docker", "podman"):
        raise ClusterctlError("--engine: push with docker or podman; copy an Apptainer .sif file where the nodes "
                              "read it (or `apptainer push` it to an ORAS registry)")
    return Command([engine, "push", checked_ref(tag, "--tag")], Path.cwd())


def run(command: Command) -> None:
    """Run an engine command with its output on this terminal; a failure is a one-line error."""
    if shutil.which(command.argv[0]) is None:
        others = ", ".join(e for e in ENGINES if e != command.argv[0])
        raise ClusterctlError(f"{command.argv[0]} is not installed on this machine; choose --engine ({others})")
    try:
        proc = subprocess.run(command.argv, cwd=command.cwd, check=False, timeout=BUILD_TIMEOUT_S)  # noqa: S603
    except subprocess.TimeoutExpired:
        raise ClusterctlError(f"{command.argv[0]} {command.argv[1]} ran past {BUILD_TIMEOUT_S}s") from None
    if proc.returncode:
        raise ClusterctlError(f"{command.argv[0]} {command.argv[1]} failed with exit {proc.returncode} "
                              "(its output is above)")
