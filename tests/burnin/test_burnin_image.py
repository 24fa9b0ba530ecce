"""The burn-in image's build context and commands: the workload's files from the installed package,
checked against git's list and by sha256sum, recipes whose instructions point at what the context
holds, and the engine command lines. No build runs: there is no container engine daemon on the test
machines, and the base image is gigabytes pulled from NVIDIA's registry."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clusterctl import __version__
from clusterctl.burnin import image

REPO = Path(__file__).resolve().parents[2]


def _instructions(text: str) -> list[tuple[str, str]]:
    """Containerfile instructions (keyword, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_context_holds_exactly_the_packages_workload_files_and_checks_them(tmp_path: Path) -> None:
    written = image.write_context(tmp_path)
    tracked = subprocess.run(["git", "ls-files", "workloads"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode:
        pytest.skip("not a git checkout: no independent list of the workload's files")
    expected = sorted(tracked.stdout.split())
    assert sorted(p for p in written if p.startswith("workloads/")) == expected
    on_disk = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "workloads").rglob("*") if p.is_file())
    assert on_disk == expected  # no __pycache__, nothing else
    for path in expected:
        assert (tmp_path / path).read_bytes() == (REPO / path).read_bytes()
    check = subprocess.run(["sha256sum", "--check", "--strict", "workloads.sha256"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == len(expected), check.stdout + check.stderr
    # The copy is a working package on its own, as in the image (PYTHONPATH=WORKDIR).
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path)}
    probe = subprocess.run([sys.executable, "-c", "import workloads.transformer.configs as c; print(c.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0 and probe.stdout.strip().startswith(str(tmp_path)), probe.stderr


def test_the_recipes_install_the_context_where_the_launchers_run_it(tmp_path: Path) -> None:
    image.write_context(tmp_path)
    steps = _instructions((tmp_path / "Containerfile").read_text())
    keywords = [k for k, _ in steps]
    assert keywords.index("ARG") < keywords.index("FROM")  # a build arg before FROM may choose the base
    assert ("ARG", "BASE_IMAGE=nvcr.io/nvidia/pytorch:25.01-py3") in steps and ("FROM", "${BASE_IMAGE}") in steps
    assert ("WORKDIR", image.WORKDIR) in steps and ("ENV", f"PYTHONPATH={image.WORKDIR}") in steps
    copies = [args.split() for k, args in steps if k == "COPY"]
    assert copies and all((tmp_path / source).exists() for *sources, _ in copies for source in sources)
    assert ["workloads/", f"{image.WORKDIR}/workloads/"] in copies
    assert any(k == "RUN" and "sha256sum --check" in args for k, args in steps)

    definition = (tmp_path / "burnin.def").read_text()
    assert re.search(r"^From: \{\{ BASE_IMAGE \}\}$", definition, re.MULTILINE)
    files = definition.split("%files", 1)[1].split("%", 1)[0].split("\n")
    pairs = [line.split() for line in files if line.strip()]
    assert pairs and all((tmp_path / source).exists() for source, _ in pairs)
    assert ["workloads", f"{image.WORKDIR}/workloads"] in pairs


def test_build_and_push_commands_through_the_cli(cli, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    built = cli("burnin", "image", "build", "--context", context, "--base", "registry.local/pytorch:24.08-py3",
                "--tag", "registry.local/burnin:1", "--dry-run", "-o", "json")
    assert built.code == 0, built.err
    data = built.json()
    assert data["command"] == ["docker", "build", "--file", f"{context}/Containerfile", "--build-arg",
                               "BASE_IMAGE=registry.local/pytorch:24.08-py3", "--build-arg",
                               f"CLUSTERCTL_VERSION={__version__}", "--tag", "registry.local/burnin:1", str(context)]
    assert data["built"] is False and (context / "workloads" / "transformer" / "train.py").is_file()

    sif = cli("burnin", "image", "build", "--engine", "apptainer", "--context", context, "--dry-run", "-o", "json")
    assert sif.json()["command"] == ["apptainer", "build", f"clusterctl-burnin_{__version__}.sif", "burnin.def"]
    assert sif.json()["cwd"] == str(context)  # %files sources are relative to the build's directory

    push = cli("burnin", "image", "push", "--engine", "podman", "--tag", "registry.local/burnin:1", "--dry-run",
               "-o", "json")
    assert push.json()["command"] == ["podman", "push", "registry.local/burnin:1"]

    for args in (["build", "--tag", "--privileged"], ["build", "--base", "x y"], ["push", "--engine", "apptainer"],
                 ["build", "--engine", "kaniko"]):
        bad = cli("burnin", "image", *args, "--dry-run")
        assert bad.code == 2 and "Traceback" not in bad.err, bad.err

