"""`clusterctl provision --stages os` on a real Debian 12 node, from a site mirror laid out like NVIDIA's.

The node (support.debian_node) runs Debian's own systemd, apt and dpkg and is air-gapped: its only
repositories are the site's mirror (support.nvidia_repo), signed with a key the inventory names. Its PCI
device list shows one H100 and one NVSwitch, which is all the playbooks' hardware facts read; the NVIDIA
packages are stand-ins that behave like the originals where the roles depend on it (the module loads only
at the next boot, Fabric Manager refuses another driver version, newer versions wait in the repository).

One run installs and holds driver, Fabric Manager, CUDA, NCCL and DCGM at the inventory's versions,
reboots the node (a new boot id) so that the services that need the driver start, and installs what the
validation agent needs. `--reapply` on the same node then changes nothing; after drift by hand (a package
released from its hold, Fabric Manager stopped) it puts the node back.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import debian_node, nvidia_repo, wheelhouse
from support.provision_lab import open_store

from clusterctl.burnin.runtime import Runtime

RUNTIME = Runtime.this_release()

HELD = {
    "nvidia-driver": f"{nvidia_repo.DRIVER}-1",
    "nvidia-kernel-open-dkms": f"{nvidia_repo.DRIVER}-1",
    "nvidia-fabricmanager-550": f"{nvidia_repo.DRIVER}-1",
    "cuda-toolkit-12-4": f"{nvidia_repo.CUDA}-1",
    "libnccl2": f"{nvidia_repo.NCCL}-1+cuda12.4",
    "libnccl-dev": f"{nvidia_repo.NCCL}-1+cuda12.4",
    "datacenter-gpu-manager": f"1:{nvidia_repo.DCGM}",
    "dcgm-exporter": f"{nvidia_repo.DCGM}-3.4.2-1",
}
SERVICES = ("nvidia-persistenced", "nvidia-fabricmanager", "nvidia-dcgm", "dcgm-exporter", "node_exporter")
# PCI class codes the hardware facts look for: 03/02 a 3D controller (the GPU), 06/80 NVIDIA's NVSwitch.
PCI = {"0000:18:00.0": ("0x10de", "0x2330", "0x030200"), "0000:05:00.0": ("0x10de", "0x22a3", "0x068000")}


@pytest.fixture(scope="module")
def rootfs() -> Path:
    missing = debian_node.tools_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing, and CI must run this (tools/system-deps.sh installs them)")
        pytest.skip(f"{', '.join(missing)} not installed (tools/system-deps.sh)")
    return debian_node.build_rootfs()


@pytest.fixture(scope="module")
def wheels() -> Path:
    """The burn-in runtime's wheelhouse (PyTorch CPU, its dependencies, nvidia-ml-py), shown to the node read-only."""
    return wheelhouse.build()


# One node for the module: its boot and first provisioning are most of this file's time.
@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nvidia_repo.NvidiaRepo]:
    repo = nvidia_repo.NvidiaRepo(tmp_path_factory.mktemp("mirror") / "mirror", "127.3.1.1")
    try:
        yield repo
    finally:
        repo.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, rootfs: Path, mirror: nvidia_repo.NvidiaRepo,
         wheels: Path) -> Iterator[debian_node.DebianNode]:
    tmp_path = tmp_path_factory.mktemp("debian")
    pci = tmp_path / "pci"
    for address, (vendor, device, klass) in PCI.items():
        (pci / address).mkdir(parents=True)
        for name, value in (("vendor", vendor), ("device", device), ("class", klass)):
            (pci / address / name).write_text(value + "\n")
    machine = debian_node.DebianNode(tmp_path / "node", "127.3.1.2", rootfs=rootfs,
                                     binds={pci: "/sys/bus/pci/devices", mirror.git.parent: "/srv/mirror",
                                            wheels: "/srv/wheelhouse"})
    # The container runs the host's kernel, for which no Debian package ships headers: they are stood in for
    # where DKMS looks, as an installed linux-headers package would put them.
    (machine.root / "lib" / "modules" / os.uname().release / "build").mkdir(parents=True)
    try:
        machine.start()
        yield machine
    finally:
        machine.stop()
        machine.remove()


def write_inventory(path: Path, node: debian_node.DebianNode, mirror: nvidia_repo.NvidiaRepo) -> Path:
    path.write_text(f"""version: 1
site:
  name: debian-lab
  secrets_dir: {node.workdir}
  repositories:
    cuda: {{url: "{mirror.url}", key: {mirror.key}}}
    pypi: {{url: "{mirror.pypi}"}}
    node_exporter: {{url: "{mirror.node_exporter}"}}
    nccl_tests: {{url: "file:///srv/mirror/{mirror.git.name}"}}
    wheelhouse: {{url: "file:///srv/wheelhouse"}}
defaults:
  bmc: {{address: 10.9.0.1, user: admin, password: env:CLUSTERCTL_BMC_PASSWORD}}
  ssh: {{address: {node.address}, port: {node.port}, user: {node.user}, key: "file:{node.client_key}",
        known_hosts: {node.known_hosts}}}
  hardware: {{gpu: {{model: H100-SXM5-80GB, count: 1, nvlink: true}}}}
  software: {{driver: {nvidia_repo.DRIVER}, fabricmanager: {nvidia_repo.DRIVER}, cuda: {nvidia_repo.CUDA},
             nccl: {nvidia_repo.NCCL}, dcgm: {nvidia_repo.DCGM}, pytorch: {wheelhouse.TORCH}}}
halls: [{{name: H1, rows: [{{name: R1, racks: [{{name: r1, max_rebooting: 1}}]}}]}}]
groups:
  - {{name: gpu, nodes: "deb01", rack: r1}}
""")
    return path


def provision(cli: Any, inventory: Path, *extra: str, stages: str = "os") -> tuple[dict[str, Any], dict[str, Any]]:
    """The node's playbook outcome (ansible-runner's recap) and the run's summary."""
    code, out, err = cli("-o", "json", "provision", str(inventory), "--stages", stages, "--yes", *extra)
    outcome = last_host_outcome()
    assert code == 0, f"{out} {err} {outcome}"
    return outcome, out


def last_host_outcome() -> dict[str, Any]:
    store = open_store()
    try:
        events = store.events(kind="ansible.host")
        return events[-1].payload if events else {}
    finally:
        store.close()


def tasks_of_last_run() -> dict[tuple[str | None, str], list[str]]:
    store = open_store()
    try:
        runs = [e.run_id for e in store.events(kind="ansible.host")]
        found: dict[tuple[str | None, str], list[str]] = {}
        for e in store.events(kind="ansible.task", run_id=runs[-1]):
            found.setdefault((e.payload.get("role"), e.payload["task"]), []).append(e.payload["status"])
        return found
    finally:
        store.close()


def installed(node: debian_node.DebianNode) -> dict[str, str]:
    out = node.ssh("dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n'").stdout
    return {name: version for name, version, status in (line.split(None, 2) for line in out.splitlines())
            if status[1:2] == "i"}  # ii, or hi when held


def test_os_stage_installs_pins_reboots_and_is_idempotent(cli: Any, tmp_path: Path, node: debian_node.DebianNode,
                                                          mirror: nvidia_repo.NvidiaRepo,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERCTL_BMC_PASSWORD", "unused-by-the-os-stage")
    inventory = write_inventory(tmp_path / "site.yaml", node, mirror)
    boot_before = node.boot_id()
    assert node.ssh("command -v nvidia-smi", check=False).returncode != 0  # a stock node: no driver yet

    first, summary = provision(cli, inventory)
    assert first["status"] == "ok" and first["changed"] > 0, first
    # The reboot went through the run's power gate, as firmware and BIOS reboots do.
    assert summary["racks"]["r1"]["peak_rebooting"] == 1, summary
    tasks = tasks_of_last_run()
    assert tasks[("nvidia_driver", "Reboot to load the NVIDIA driver")] == ["changed"], tasks
    assert node.boot_id() != boot_before
    assert node.boots == 2

    # Exactly the inventory's versions, though the repository offers newer ones, and held there.
    versions = installed(node)
    assert {name: versions.get(name) for name in HELD} == HELD
    holds = set(node.ssh("apt-mark showhold").stdout.split())
    assert set(HELD) <= holds
    candidate = node.ssh("apt-cache policy nvidia-driver").stdout
    assert nvidia_repo.DRIVER_NEWER in candidate  # the newer driver is there; the hold keeps it out
    # The driver is loaded (after the reboot), so everything that needs it runs.
    assert node.ssh("nvidia-smi --query-gpu=driver_version --format=csv,noheader").stdout.strip() == nvidia_repo.DRIVER
    for service in SERVICES:
        state = node.ssh(f"systemctl is-enabled {service}; systemctl is-active {service}", check=False).stdout.split()
        expected = ["enabled", "active"]
        assert state == expected, (service, state)
    assert node.ssh("systemctl is-enabled clusterctl-gpu-tuning").stdout.strip() == "enabled"  # runs at boot
    # The repository is the site's mirror, checked with the site's key.
    sources = node.ssh("cat /etc/apt/sources.list.d/clusterctl-cuda.sources").stdout
    assert f"URIs: {mirror.url}\n" in sources and "Signed-By: /etc/apt/keyrings/clusterctl-cuda.asc" in sources
    assert node.ssh("cat /etc/apt/keyrings/clusterctl-cuda.asc").stdout.strip() == mirror.key.read_text().strip()
    # What the validation agent needs: pynvml for python3, the kernel log for the SSH user.
    assert node.ssh("python3 -c 'import pynvml, importlib.metadata as m; print(m.version(\"nvidia-ml-py\"))'"
                    ).stdout.strip() == nvidia_repo.NVML_PY
    assert "systemd-journal" in node.ssh("id -nG").stdout.split()
    assert node.ssh("test -x /opt/nccl-tests/build/all_reduce_perf && cat /etc/nccl.conf", check=False).returncode == 0
    assert "blacklist nouveau" in node.ssh("cat /etc/modprobe.d/blacklist-nouveau.conf").stdout
    # The burn-in runtime, from the wheelhouse: PyTorch at the inventory's version, this release's workload.
    manifest = json.loads(node.ssh(f"cat {RUNTIME.directory}/runtime.json").stdout)
    assert manifest["clusterctl"] == RUNTIME.version and manifest["workloads_sha256"] == RUNTIME.checksum
    assert manifest["torch"].startswith(wheelhouse.TORCH), manifest

    # The same playbooks again on the same node: nothing to change, no reboot.
    second, summary = provision(cli, inventory, "--reapply")
    assert second["status"] == "ok" and second["changed"] == 0, (second, changed_tasks())
    assert node.boots == 2 and summary["racks"] == {}

    # Drift by hand: the driver released from its hold, Fabric Manager stopped. --reapply puts both back.
    node.ssh("sudo apt-mark unhold nvidia-driver && sudo systemctl stop nvidia-fabricmanager")
    third, _ = provision(cli, inventory, "--reapply")
    assert third["status"] == "ok" and third["changed"] == 2, (third, changed_tasks())
    assert "nvidia-driver" in node.ssh("apt-mark showhold").stdout.split()
    assert node.ssh("systemctl is-active nvidia-fabricmanager", check=False).stdout.strip() == "active"
    assert node.boots == 2


def changed_tasks() -> list[tuple[str | None, str]]:
    return [key for key, statuses in tasks_of_last_run().items() if "changed" in statuses]


def burnin(cli: Any, inventory: Path) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    code, report, err = cli("-o", "json", "burnin", str(inventory), "--launcher", "ssh", "--model", "transformer-tiny",
                            "--steps", "20", "--log-every", "5", "--checksum-every", "10", "--threads", "1",
                            "--timeout", "5m")
    assert isinstance(report, dict), (code, report, err)
    return code, report, time.monotonic() - started


def test_burnin_runs_on_the_nodes_runtime_and_a_node_without_it_fails_fast(
        cli: Any, tmp_path: Path, node: debian_node.DebianNode, mirror: nvidia_repo.NvidiaRepo,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`provision --stages runtime` alone, then the real workload on the node through its runtime; with the
    runtime broken the burn-in refuses at once, naming the command that puts it back, and that command does."""
    monkeypatch.setenv("CLUSTERCTL_BMC_PASSWORD", "unused-by-the-os-stage")
    inventory = write_inventory(tmp_path / "site.yaml", node, mirror)
    outcome, _ = provision(cli, inventory, stages="runtime")
    assert outcome["status"] == "ok", outcome
    assert {role for role, _ in tasks_of_last_run()} <= {None, "burnin_runtime"}  # the runtime's role alone

    code, report, _ = burnin(cli, inventory)
    assert code == 0, report
    (verdict,) = report["nodes"]
    assert verdict["node"] == "deb01" and verdict["status"] == "pass", verdict
    assert verdict["metrics"]["local_tokens_per_s"] > 0, verdict["metrics"]  # the node's own torch trained
    assert report["records"] >= 4  # a start, step reports every 5 of 20 steps, an end

    # Broken (its interpreter and manifest gone, as after an interrupted install): nothing starts, and the
    # message names the command that fixes it. Both things the node's check looks for are gone, so it reads
    # the node as having no runtime; PyTorch stays, since installing it from nothing is the first test's.
    node.ssh(f"sudo rm {RUNTIME.directory}/bin/python {RUNTIME.directory}/runtime.json")
    code, report, elapsed = burnin(cli, inventory)
    assert code == 1 and report["job_state"] == "failed", report
    (verdict,) = report["nodes"]
    assert verdict["status"] == "fail"
    fix = f"clusterctl provision {shlex.quote(str(inventory))} --stages runtime --limit deb01"
    assert f"no burn-in runtime for clusterctl {RUNTIME.version}" in verdict["reasons"][0], verdict
    assert fix in verdict["reasons"][0] and fix in report["job_message"], (verdict, report["job_message"])
    assert "Traceback" not in json.dumps(report)
    assert elapsed < 60, elapsed  # one SSH round, not a job that times out

    # The command it names, as an operator would run it, and the burn-in passes again.
    words = shlex.split(fix)
    outcome, _ = provision(cli, Path(words[2]), "--limit", "deb01", stages="runtime")
    assert outcome["status"] == "ok" and outcome["changed"] > 0, outcome
    code, report, _ = burnin(cli, inventory)
    assert code == 0, report
