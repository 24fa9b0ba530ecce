"""`clusterctl validate` for real: the agent goes over SSH (paramiko) to real sshd hosts on loopback,
reads NVML from the fake module + fixture, sysfs from a fixture tree and the kernel log from a file,
and the verdicts, the JSON output, the store and the exit code follow from what each host reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from support.sshd import SSHFleet, fleet_fixture
from typer.testing import CliRunner

from clusterctl.cli import validate as validate_cli
from clusterctl.cli.context import Settings
from clusterctl.state.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "validate"
FAKE_NVML = Path(__file__).resolve().parents[2] / "clusterctl" / "sim" / "fake_nvml.py"


fleet = fleet_fixture("validate-ssh", count=3, subnet=79)


def agent_call(nvml: str, sysfs: str, kernel: str) -> dict[str, Any]:
    return {
        "args": ["--sysfs-root", str(FIXTURES / "sysfs" / sysfs), "--kernel-log", str(FIXTURES / "kernel" / kernel),
                 "--root", str(FIXTURES / "root")],
        "env": {"CLUSTERCTL_AGENT_PYNVML": str(FAKE_NVML),
                "CLUSTERCTL_FAKE_NVML": str(FIXTURES / "nvml" / f"{nvml}.json"),
                "PATH": f"{FIXTURES / 'bin'}:/usr/bin:/bin"},
    }


def write_inventory(tmp_path: Path, fleet: SSHFleet, known_hosts: dict[str, Path] | None = None) -> Path:
    overrides = []
    for host in fleet.hosts:
        kh = (known_hosts or {}).get(host.name, host.known_hosts)
        overrides.append(f"      {host.name}: {{ssh: {{address: {host.address}, port: {host.port}, "
                         f"known_hosts: {kh}}}}}")
    path = tmp_path / "site.yaml"
    path.write_text(
        "version: 1\n"
        f"site: {{name: e2e, secrets_dir: '{fleet.client_key.parent}'}}\n"
        "defaults:\n"
        "  bmc: {address_pool: 10.9.0.0/24, user: admin, password: env:CLUSTERCTL_BMC_PASSWORD}\n"
        f"  ssh: {{address: 127.0.0.1, user: {fleet.user}, key: 'file:{fleet.client_key}'}}\n"
        "  hardware:\n"
        "    gpu: {model: H100-SXM5-80GB, count: 8, nvlink: true}\n"
        "    infiniband: {hcas: 8, rate_gbps: 400}\n"
        "  software: {driver: 550.90.07, cuda: '12.4', nccl: 2.21.5, ofed: 23.10-1.1.9.0}\n"
        "halls:\n"
        "  - name: H1\n"
        "    rows:\n"
        "      - name: R1\n"
        "        racks: [{name: r1, power_budget_w: 40000}]\n"
        "groups:\n"
        "  - name: gpu\n"
        "    nodes: host[01-03]\n"
        "    rack: r1\n"
        "    overrides:\n" + "\n".join(overrides) + "\n"
    )
    return path


def cli(*args: str, output: str = "json") -> Any:
    app = typer.Typer()

    @app.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = Settings(output=output, verbosity=-1)

    validate_cli.register(app)
    return CliRunner().invoke(app, list(args))


def test_validate_over_real_ssh_healthy_faulty_and_bad_host_key(fleet: SSHFleet, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_known_hosts"
    other_key = fleet.hosts[0].host_key_line.split(" ", 1)[1]
    wrong.write_text(f"[{fleet.hosts[2].address}]:{fleet.hosts[2].port} {other_key}")
    inventory = write_inventory(tmp_path, fleet, {"host03": wrong})
    config = tmp_path / "agents.json"
    config.write_text(json.dumps({
        "host01": agent_call("h100-healthy", "healthy", "clean.log"),
        "host02": agent_call("h100-healthy", "ib-port-down", "xid79.log"),
        "*": agent_call("h100-healthy", "healthy", "clean.log"),
    }))
    result = cli("validate", str(inventory), "--checks", "gpu,fabric,software", "--agent-config", str(config))
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    by_node = {n["node"]: n for n in doc["nodes"]}
    assert [n["node"] for n in doc["nodes"]] == ["host01", "host02", "host03"]

    healthy = by_node["host01"]
    assert healthy["status"] == "pass"
    assert all(c["status"] == "pass" for c in healthy["checks"]) and len(healthy["checks"]) > 20
    assert {"software.ofed", "fabric.ib_rate", "gpu.nvlink", "gpu.xid"} <= {c["name"] for c in healthy["checks"]}

    faulty = {c["name"]: c for c in by_node["host02"]["checks"] if c["status"] != "pass"}
    assert by_node["host02"]["status"] == "fail"
    assert set(faulty) == {"gpu.xid.79", "gpu.xid.13", "fabric.ib_port_state"}
    assert faulty["gpu.xid.79"]["rule"] == "xid.79" and "reseat or RMA" in faulty["gpu.xid.79"]["remediation"]
    assert "mlx5_3 port 1: DOWN/Disabled" in faulty["fabric.ib_port_state"]["detail"]

    # host03's known_hosts holds another host's key: that node fails alone, nothing is accepted.
    bad_key = by_node["host03"]
    assert bad_key["status"] == "fail" and [c["name"] for c in bad_key["checks"]] == ["ssh"]
    assert "does not match known_hosts" in bad_key["checks"][0]["detail"]
    assert bad_key["checks"][0]["rule"] == "ssh.SSHHostKeyError"
    assert doc["summary"]["pass"] == 1 and doc["summary"]["fail"] == 2
    assert doc["summary"]["rulesets"]["H100-SXM5-80GB"]["version"] == 2

    with Store.open(Settings().state_url) as store:
        run = store.latest_run("validate")
        assert run is not None and run.id == doc["run"] and run.status == "failed"
        failing = {f.node: f.reason for f in store.failing(run.id)}
        assert set(failing) == {"host02", "host03"} and "gpu.xid.79" in (failing["host02"] or "")
        checks = {c.check: c.status for c in store.checks("host02", run_id=run.id)}
        assert checks["gpu.xid.79"] == "fail" and checks["gpu.count"] == "pass"


def test_no_driver_node_and_table_output(fleet: SSHFleet, tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, fleet)
    config = tmp_path / "agents.json"
    config.write_text(json.dumps({"*": agent_call("no-driver", "healthy", "clean.log")}))
    result = cli("validate", str(inventory), "--limit", "host01", "--checks", "gpu", "--agent-config", str(config),
                 output="table")
    assert result.exit_code == 1
    assert "Validated 1 nodes" in result.stdout and "0 pass, 0 warn, 1 fail" in result.stdout
    assert "gpu.driver" in result.stdout and "no NVIDIA driver" in result.stdout
    assert "Traceback" not in result.output


def test_bad_checks_and_unknown_model_are_one_line_errors(fleet: SSHFleet, tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, fleet)
    result = cli("validate", str(inventory), "--checks", "gpu,magic")
    assert result.exit_code != 0 and "choose from gpu, fabric, software, power" in str(result.exception)
    b200 = tmp_path / "b200.yaml"
    b200.write_text(inventory.read_text().replace("H100-SXM5-80GB", "B200"))
    result = cli("validate", str(b200), "--checks", "gpu")
    # A model without shipped rules is an inventory error now: the model names the rules file.
    assert "unknown GPU model; expected one of: A100-SXM4-80GB, H100-SXM5-80GB" in str(result.exception)


def test_quarantine_hands_failed_nodes_to_burnins_quarantine(
    fleet: SSHFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # scontrol is the boundary: a stand-in records what Slurm would be told.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    inventory = write_inventory(tmp_path, fleet)
    config = tmp_path / "agents.json"
    config.write_text(json.dumps({"host02": agent_call("h100-remap-failed", "healthy", "clean.log"),
                                  "*": agent_call("h100-healthy", "healthy", "clean.log")}))
    result = cli("validate", str(inventory), "--checks", "gpu", "--agent-config", str(config), "--quarantine",
                 "--quarantine-via", "slurm")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert [(a["node"], a["ok"], a["via"]) for a in doc["quarantine"]] == [("host02", True, "slurm")]
    told = calls.read_text().splitlines()
    assert told == ["update nodename=host02 state=drain reason=validate failed: gpu.remap_failed: GPU 6 "
                    "(0000:ba:00.0): row remapping failed (8 uncorrectable rows)"]
    with Store.open(Settings().state_url) as store:
        assert [f.node for f in store.flags(quarantined_only=True)] == ["host02"]
    result = cli("validate", str(inventory), "--checks", "gpu", "--agent-config", str(config), "--quarantine")
    assert "names no scheduler for these nodes" in str(result.exception)


def agent_call_reading_the_kernel_log(nvml: Path, kernel: str, **modes: str) -> dict[str, Any]:
    """The agent as on a stock node: no --kernel-log, so it runs journalctl/sudo/dmesg (stand-ins that answer
    as the SSH user's rights say, see tests/fixtures/validate/kernel-bin) and systemctl."""
    call = agent_call("h100-healthy", "healthy", kernel)
    call["args"] = call["args"][:2] + call["args"][4:]  # drop --kernel-log FILE
    call["env"].update(CLUSTERCTL_FAKE_NVML=str(nvml), FAKE_KERNEL_LOG=str(FIXTURES / "kernel" / kernel),
                       PATH=f"{FIXTURES / 'kernel-bin'}:{call['env']['PATH']}", **modes)
    return call


def test_over_ssh_xids_come_from_the_journal_or_sudo_and_an_unreadable_log_fails(
    fleet: SSHFleet, tmp_path: Path
) -> None:
    inventory = write_inventory(tmp_path, fleet)
    healthy = FIXTURES / "nvml" / "h100-healthy.json"
    config = tmp_path / "agents.json"
    config.write_text(json.dumps({
        "host01": agent_call_reading_the_kernel_log(healthy, "clean.log", FAKE_JOURNAL="group"),
        "host02": agent_call_reading_the_kernel_log(healthy, "xid79.log", FAKE_SUDO="allowed"),
        "host03": agent_call_reading_the_kernel_log(healthy, "xid79.log"),  # Ubuntu's defaults, nothing granted
    }))
    result = cli("validate", str(inventory), "--checks", "gpu", "--agent-config", str(config))
    assert result.exit_code == 1, result.output
    by_node = {n["node"]: {c["name"]: c for c in n["checks"]} for n in json.loads(result.stdout)["nodes"]}
    assert by_node["host01"]["gpu.xid"]["status"] == "pass"
    assert by_node["host01"]["gpu.xid"]["detail"] == "no XID events since boot (read by journalctl -k -b -o cat " \
                                                     "--no-pager)"
    # Not in the journal's group, but allowed sudo -n journalctl -k: the XIDs are seen.
    assert by_node["host02"]["gpu.xid.79"]["status"] == "fail"
    # Nothing may read the kernel log: the XID check fails, naming each refusal and the fix.
    xid = by_node["host03"]["gpu.xid"]
    assert xid["status"] == "fail" and xid["rule"] == "gpu.kernel_log"
    assert xid["detail"].startswith("cannot read the kernel log: journalctl -k: shows only the user's own journal")
    assert "sudo -n journalctl -k: a password is required" in xid["detail"]
    assert xid["remediation"].startswith("Add the SSH user to group systemd-journal")
    assert "gpu.xid.79" not in by_node["host03"]


def test_over_ssh_fabric_manager_failures_and_a_pending_remap_fail_acceptance(fleet: SSHFleet, tmp_path: Path) -> None:
    fixture = json.loads((FIXTURES / "nvml" / "h100-healthy.json").read_text())
    for gpu in fixture["gpus"]:
        gpu["fabric"]["state"] = 2  # in progress: Fabric Manager never finished the NVSwitch fabric (CUDA error 802)
    fm_down = tmp_path / "fm-down.json"
    fm_down.write_text(json.dumps(fixture))
    old = tmp_path / "old-driver.json"
    old.write_text(json.dumps({**fixture, "missing_calls": ["nvmlDeviceGetGpuFabricInfoV",
                                                            "nvmlDeviceGetGpuFabricInfo"]}))
    broken = agent_call_reading_the_kernel_log(fm_down, "clean.log", FAKE_JOURNAL="group",
                                               FAKE_SYSTEMCTL_FAILED="nvidia-fabricmanager")
    inventory = write_inventory(tmp_path, fleet)
    config = tmp_path / "agents.json"
    config.write_text(json.dumps({
        "host01": broken,
        "host02": agent_call_reading_the_kernel_log(old, "clean.log", FAKE_JOURNAL="group"),
        "host03": agent_call_reading_the_kernel_log(FIXTURES / "nvml" / "h100-remap-pending.json", "clean.log",
                                                    FAKE_JOURNAL="group"),
    }))
    result = cli("validate", str(inventory), "--checks", "gpu", "--agent-config", str(config))
    assert result.exit_code == 1, result.output
    nodes = {n["node"]: n for n in json.loads(result.stdout)["nodes"]}
    bad = {name: {c["name"]: c for c in n["checks"] if c["status"] != "pass"} for name, n in nodes.items()}
    assert set(bad["host01"]) == {"gpu.fabric_manager", "gpu.fabric_state"}
    assert bad["host01"]["gpu.fabric_manager"]["detail"] == "nvidia-fabricmanager is failed"
    assert bad["host01"]["gpu.fabric_state"]["detail"].startswith("GPU 0 (0000:18:00.0): fabric state in_progress")
    assert "restart" in bad["host01"]["gpu.fabric_manager"]["remediation"]
    # An older driver without the fabric call: said so, and the running service is enough.
    assert nodes["host02"]["status"] == "pass"
    state = next(c for c in nodes["host02"]["checks"] if c["name"] == "gpu.fabric_state")
    assert "not supported by this driver" in state["detail"]
    # A row remap waiting for a GPU reset: the node is not accepted until it is reset.
    assert nodes["host03"]["status"] == "fail" and set(bad["host03"]) == {"gpu.remap_pending"}
    assert bad["host03"]["gpu.remap_pending"]["remediation"].startswith("Reset the GPU")
