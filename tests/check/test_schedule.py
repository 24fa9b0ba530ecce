"""`clusterctl check schedule`: the systemd timer, scrontab entry and CronJob, each checked by its own tool where
one exists (systemd-analyze verify, kubernetes-validate), and never carrying an unchecked value."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.cli import run_cli

from clusterctl.check.schedule import Job, parse_every

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventories" / "lab.yaml"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, and CI must run it")
        pytest.skip(f"{name} is not installed")
    return found


def schedule(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    result = run_cli(capsys, "-o", "json", "check", "schedule", str(LAB), *args)
    assert result.code == 0, result.err
    return result.document("check schedule")


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    analyze = tool("systemd-analyze")
    doc = schedule(capsys, "--every", "6h", "--out", str(tmp_path))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["clusterctl-check-quick.service", "clusterctl-check-quick.timer"]
    assert sorted(doc["written"]) == [str(tmp_path / n) for n in names]
    timer = (tmp_path / "clusterctl-check-quick.timer").read_text()
    assert "OnCalendar=*-*-* 00/6:00:00" in timer
    service = (tmp_path / "clusterctl-check-quick.service").read_text()
    assert f"ExecStart={sys.executable} -m clusterctl check {LAB} --suite quick" in service
    units = [str(tmp_path / n) for n in names]
    done = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # The tool really reads what we give it: a broken calendar is refused.
    (tmp_path / "clusterctl-check-quick.timer").write_text(timer.replace("00/6:00:00", "every-so-often"))
    done = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "calendar" in done.stderr


def test_the_cronjob_is_a_valid_kubernetes_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    doc = schedule(capsys, "--via", "kubernetes", "--every", "30m", "--image", "registry.example/clusterctl:1",
                   "--priority-class", "clusterctl-low", "--print", "--limit", "gpu[0001-0008]")
    assert doc["written"] == []
    manifest = yaml.safe_load(doc["files"]["clusterctl-check-quick.yaml"])
    kubernetes_validate.validate(manifest, desired_version=kubernetes_validate.latest_version(), strict=True)
    spec = manifest["spec"]
    assert spec["schedule"] == "*/30 * * * *" and spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "clusterctl-low"
    assert pod["containers"][0]["args"] == ["check", "/etc/clusterctl/lab.yaml", "--suite", "quick", "--limit",
                                            "gpu[0001-0008]"]


def test_the_scrontab_entry_quotes_every_word(capsys: pytest.CaptureFixture[str]) -> None:
    doc = schedule(capsys, "--via", "slurm", "--every", "2h", "--print", "--limit", "gpu[0001-0008]")
    lines = doc["files"]["clusterctl-check-quick.scrontab"].splitlines()
    assert "#SCRON --time=02:00:00" in lines and "#SCRON --dependency=singleton" in lines
    fields = lines[-1].split(" ", 5)
    assert fields[:5] == ["0", "*/2", "*", "*", "*"]
    assert shlex.split(fields[5]) == [sys.executable, "-m", "clusterctl", "check", str(LAB), "--suite", "quick",
                                      "--limit", "gpu[0001-0008]"]
    assert "'gpu[0001-0008]'" in fields[5]  # quoted: a shell would glob the brackets


def test_bad_values_never_reach_a_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--every", "7h"], ["--every", "soon"], ["--via", "cron"], ["--via", "kubernetes"],
                 ["--via", "kubernetes", "--image", "x; rm -rf /"], ["--limit", "gpu%h"]):
        result = run_cli(capsys, "check", "schedule", str(LAB), "--print", *args)
        assert result.code == 2 and "Traceback" not in result.err, (args, result.err)
    spaced = tmp_path / "my site.yaml"
    spaced.write_text(LAB.read_text())
    with pytest.raises(Exception, match="only letters, digits"):
        Job(spaced, "quick", parse_every("6h")).argv()


def test_the_scrontab_entry_is_installed_in_place_of_its_earlier_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Debian's slurm-client has no scrontab: a stand-in at that boundary keeps the user's table in a file,
    # as scrontab does (`-l` prints it; `scrontab FILE` replaces it whole).
    bin_dir, table = tmp_path / "bin", tmp_path / "table"
    bin_dir.mkdir()
    table.write_text("#SCRON --job-name=backup\n0 3 * * * /usr/local/bin/backup\n"
                     "#SCRON --job-name=clusterctl-check-quick\n#SCRON --time=06:00:00\n0 */6 * * * old-command\n")
    (bin_dir / "scrontab").write_text(f'#!/bin/sh\nif [ "$1" = -l ]; then cat {table}; else cp "$1" {table}; fi\n')
    (bin_dir / "scrontab").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    doc = schedule(capsys, "--via", "slurm", "--every", "2h", "--out", str(tmp_path))
    installed = table.read_text().splitlines()
    assert installed[:2] == ["#SCRON --job-name=backup", "0 3 * * * /usr/local/bin/backup"]  # the user's own, kept
    assert "old-command" not in table.read_text() and installed.count("#SCRON --job-name=clusterctl-check-quick") == 1
    assert installed[2:] == (tmp_path / "clusterctl-check-quick.scrontab").read_text().splitlines()
    assert doc["written"] == [str(tmp_path / "clusterctl-check-quick.scrontab")]
    schedule(capsys, "--via", "slurm", "--every", "2h", "--out", str(tmp_path))  # again: still one entry
    assert table.read_text().count("clusterctl-check-quick") == 1
    monkeypatch.setenv("PATH", "/nonexistent")
    result = run_cli(capsys, "check", "schedule", str(LAB), "--via", "slurm", "--out", str(tmp_path))
    assert result.code == 2 and "scrontab is not installed" in result.err and "Traceback" not in result.err
