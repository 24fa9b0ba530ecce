"""Slurm's client commands run with this process's secrets masked: sbatch copies its environment into the
job and into slurmctld's saved state, so an unmasked one would leak a BMC password onto every node."""

from __future__ import annotations

import os
import stat

import pytest

from clusterctl import log
from clusterctl.errors import ClusterctlError
from clusterctl.slurm_commands import call_slurm, run_slurm


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    script = tmp_path / "sbatch"
    script.write_text("#!/bin/sh\nenv\n[ \"$1\" = fail ] && { echo 'sbatch: error: Invalid partition' >&2; exit 1; }\n"
                      "exit 0\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return script


def test_secrets_never_reach_the_job_environment(fake_sbatch, monkeypatch):
    secret = "s3cret-bmc-pass-7781"
    log.redact(secret)
    try:
        monkeypatch.setenv("IDRAC_PASSWORD", secret)
        monkeypatch.setenv("CLUSTERCTL_STATE", "postgresql://clusterctl:dbpass@db/clusterctl")
        out = run_slurm(["sbatch", "ok"], "/etc/slurm/test.conf")
    finally:
        log.forget(secret)
    assert secret not in out and "dbpass" not in out
    assert "IDRAC_PASSWORD=***" in out and "CLUSTERCTL_STATE=***" in out
    assert "SLURM_CONF=/etc/slurm/test.conf" in out


def test_a_failed_command_is_one_line_and_call_slurm_returns_it(fake_sbatch):
    with pytest.raises(ClusterctlError, match=r"^--launcher slurm: sbatch: sbatch: error: Invalid partition$"):
        run_slurm(["sbatch", "fail"], None, prefix="--launcher slurm: ")
    assert call_slurm(["sbatch", "fail"], None).returncode == 1


def test_a_missing_command_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClusterctlError, match="sacct is not installed on this machine"):
        call_slurm(["sacct", "-j", "1"], None)
