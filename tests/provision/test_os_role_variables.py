"""What the os stage's roles resolve to on each distribution they support: the NVIDIA repository, its key,
the driver's packages and the EL module stream. Only Debian 12 runs for real in the tests
(test_os_stage_debian.py); these names are what Ubuntu and EL nodes get, checked against the names NVIDIA
publishes (https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/).

The roles' defaults are loaded by Ansible itself (`ansible -m debug`), with the hardware facts a node of
each distribution reports, so the templates are evaluated as they are in a run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ANSIBLE = Path(sys.executable).with_name("ansible")
CUDA_REPOS = "https://developer.download.nvidia.com/compute/cuda/repos/"
SOFTWARE = {"driver": "550.90.07", "cuda": "12.4.1", "nccl": "2.21.5", "dcgm": "3.3.7"}
QUERY = ('{"os": package_repos_os, "cuda": package_repos_cuda_url, "key": package_repos_cuda_key_url, '
         '"driver": nvidia_driver_packages[nvidia_driver_family][nvidia_driver_flavour], '
         '"stream": nvidia_driver_stream, "nccl": nccl_package_version, '
         '"fm": fabricmanager_packages[clusterctl_hw.pkg_mgr]}')


def resolve(tmp_path: Path, hw: dict[str, Any], **extra: Any) -> dict[str, Any]:
    facts = {"gpu": True, "ib": False, "nvswitch": True, "root": "/", "systemd": True, "kernel": "6.8.0-45-generic",
             "arch": "x86_64"} | hw
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({"clusterctl_hw": facts, "clusterctl_software": SOFTWARE} | extra))
    command = [str(ANSIBLE), "localhost", "-c", "local", "-m", "debug", "-a", f"msg={{{{ {QUERY} }}}}"]
    for defaults in sorted(PLAYBOOKS.glob("roles/*/defaults/main.yml")) + [PLAYBOOKS / "group_vars" / "all.yml"]:
        command += ["-e", f"@{defaults}"]
    command += ["-e", f"@{variables}"]
    done = subprocess.run(command, cwd=PLAYBOOKS, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.split("=>", 1)[1])["msg"]


@pytest.mark.parametrize(("hw", "expected"), [
    ({"pkg_mgr": "apt", "os_id": "ubuntu", "os_version": "22.04"},
     {"os": "ubuntu22.04", "cuda": f"{CUDA_REPOS}ubuntu2204/x86_64/",
      "key": f"{CUDA_REPOS}ubuntu2204/x86_64/3bf863cc.pub",
      "driver": ["nvidia-driver-550-server-open", "nvidia-dkms-550-server-open"], "fm": ["nvidia-fabricmanager-550"]}),
    ({"pkg_mgr": "apt", "os_id": "ubuntu", "os_version": "24.04", "arch": "aarch64"},
     {"os": "ubuntu24.04", "cuda": f"{CUDA_REPOS}ubuntu2404/sbsa/",
      "key": f"{CUDA_REPOS}ubuntu2404/sbsa/3bf863cc.pub"}),
    ({"pkg_mgr": "apt", "os_id": "debian", "os_version": "12"},
     {"os": "debian12", "cuda": f"{CUDA_REPOS}debian12/x86_64/",
      "driver": ["nvidia-driver", "nvidia-kernel-open-dkms"]}),
    ({"pkg_mgr": "dnf", "os_id": "rocky", "os_version": "9.4"},
     {"os": "rocky9", "cuda": f"{CUDA_REPOS}rhel9/x86_64/", "key": f"{CUDA_REPOS}rhel9/x86_64/D42D0685.pub",
      "stream": "550-open", "driver": ["nvidia-driver", "nvidia-driver-cuda", "kmod-nvidia-open-dkms"],
      "fm": ["nvidia-fabric-manager"], "nccl": "2.21.5-1+cuda12.4"}),
])
def test_each_distribution_gets_nvidias_repository_and_package_names(tmp_path: Path, hw: dict[str, Any],
                                                                     expected: dict[str, Any]) -> None:
    got = resolve(tmp_path, hw)
    assert {k: got[k] for k in expected} == expected


def test_el_module_streams_are_ones_nvidia_publishes(tmp_path: Path) -> None:
    # EL 9 streams: BRANCH-open (open modules, DKMS), BRANCH-dkms (proprietary, DKMS), BRANCH (precompiled).
    el = {"pkg_mgr": "dnf", "os_id": "rhel", "os_version": "9.4"}
    assert resolve(tmp_path, el, nvidia_driver_open=False)["stream"] == "550-dkms"
    assert resolve(tmp_path, el, nvidia_driver_open=False, nvidia_driver_flavour="precompiled")["stream"] == "550"


def test_a_site_mirror_replaces_the_upstream_repository(tmp_path: Path) -> None:
    got = resolve(tmp_path, {"pkg_mgr": "apt", "os_id": "ubuntu", "os_version": "22.04"},
                  clusterctl_repositories={"cuda": {"url": "http://mirror.dc1/cuda", "key": "/keys/mirror.asc"}})
    assert got["cuda"] == "http://mirror.dc1/cuda/"
