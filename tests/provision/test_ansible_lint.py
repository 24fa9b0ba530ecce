"""The playbooks pass ansible-lint's production profile (the strictest one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def test_playbooks_pass_ansible_lint_production_profile() -> None:
    bin_dir = Path(sys.executable).parent
    lint = shutil.which("ansible-lint", path=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    if lint is None:
        if os.environ.get("CI"):
            pytest.fail("ansible-lint is not installed, and CI must run it (pip install ansible-lint)")
        pytest.skip("ansible-lint is not installed")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1")
    done = subprocess.run([lint, "--profile", "production", "--nocolor"], cwd=PLAYBOOKS, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr
