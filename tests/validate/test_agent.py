"""The node-side agent as a program: the recorded reports are still what it prints, and it degrades
part by part (no driver, a lost GPU, an unreadable kernel log) without ever printing a traceback."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from clusterctl.validate.evaluate import evaluate_report
from clusterctl.validate.expect import Expectation
from clusterctl.validate.rules import load_ruleset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "validate"
AGENT = Path(__file__).resolve().parents[2] / "clusterctl" / "validate" / "agent.py"
PYTHON = "/usr/bin/python3"  # the node's interpreter, not this virtualenv's


def _make_fixtures() -> Any:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE = _make_fixtures()


def run_agent(env: dict[str, str], args: list[str]) -> tuple[dict[str, Any], str]:
    done = subprocess.run([PYTHON, "-", *args], input=AGENT.read_bytes(), env=env, capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr.decode()


@pytest.mark.parametrize("scenario", sorted(MAKE.SCENARIOS))
def test_recorded_reports_are_what_the_agent_prints(scenario: str) -> None:
    nvml, sysfs, log = MAKE.SCENARIOS[scenario]
    doc, stderr = run_agent(MAKE.agent_env(FIXTURES / "nvml" / f"{nvml}.json"),
                            MAKE.agent_args(FIXTURES / "sysfs" / sysfs, FIXTURES / "kernel" / f"{log}.log"))
    doc["hostname"] = "gpu-node"
    assert abs(doc.pop("time") - time.time()) < 600  # the node's clock, which periodic checks date figures by
    doc["xid"]["source"] = f"kernel/{log}.log"
    recorded = json.loads((FIXTURES / "agent" / f"{scenario}.json").read_text())
    assert doc == recorded, "agent output changed: run tests/fixtures/validate/make_fixtures.py and review the diff"
    assert stderr == ""


def test_without_pynvml_or_kernel_log_each_part_reports_its_own_error(tmp_path: Path) -> None:
    doc, stderr = run_agent({"PATH": "/usr/bin:/bin"}, ["--sysfs-root", str(tmp_path), "--kernel-log",
                                                        str(tmp_path / "missing.log"), "--root", str(tmp_path)])
    assert doc["gpu"] == {"error": "no NVIDIA driver", "detail": "the pynvml module is not installed"}
    assert doc["xid"]["error"].startswith("cannot read the kernel log: ") and "missing.log" in doc["xid"]["error"]
    assert doc["infiniband"] == {"hcas": []}
    assert doc["software"] == {k: None for k in ("cuda", "dcgm", "driver", "fabricmanager", "nccl", "ofed")}
    assert "Traceback" not in stderr
    checks = {c.name: c for c in evaluate_report(doc, Expectation("n", gpu_count=8), load_ruleset("H100-SXM5-80GB"))}
    assert checks["gpu.driver"].status == "fail" and checks["gpu.driver"].detail.startswith("no NVIDIA driver")
    assert checks["gpu.xid"].status == "fail" and checks["gpu.xid"].rule == "gpu.kernel_log"
    assert "systemd-journal" in (checks["gpu.xid"].remediation or "")


def test_a_lost_gpu_and_a_broken_nvml_call_do_not_stop_the_report(tmp_path: Path) -> None:
    fixture = json.loads((FIXTURES / "nvml" / "h100-healthy.json").read_text())
    fixture["gpus"][2]["lost"] = True
    del fixture["gpus"][0]["pcie"]  # unsupported on this GPU: null values, not an error
    nvml = tmp_path / "nvml.json"
    nvml.write_text(json.dumps(fixture))
    # A pynvml whose throttle call blows up with a non-NVML error, in front of the fake one.
    broken = tmp_path / "broken_pynvml.py"
    broken.write_text(
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('_fake', {str(MAKE.FAKE_NVML)!r})\n"
        "_fake = importlib.util.module_from_spec(spec); spec.loader.exec_module(_fake)\n"
        "globals().update({k: v for k, v in vars(_fake).items() if not k.startswith('__')})\n"
        "def nvmlDeviceGetCurrentClocksThrottleReasons(handle):\n"
        "    raise RuntimeError('driver returned garbage')\n"
    )
    env = {"CLUSTERCTL_AGENT_PYNVML": str(broken), "CLUSTERCTL_FAKE_NVML": str(nvml), "PATH": "/usr/bin:/bin"}
    doc, stderr = run_agent(env, ["--kernel-log", str(FIXTURES / "kernel" / "clean.log")])
    devices = doc["gpu"]["devices"]
    assert doc["gpu"]["count"] == 8 and devices[2] == {"index": 2, "error": "GPU is lost"}
    assert devices[0]["pcie"] == {"gen_cur": None, "gen_max": None, "width_cur": None, "width_max": None,
                                  "replay": None}
    assert all(d.get("throttle") is None for d in devices if "error" not in d)
    assert "Traceback" not in stderr
    checks = {c.name: c for c in evaluate_report(doc, Expectation("n", gpu_count=8), load_ruleset("H100-SXM5-80GB"))}
    assert checks["gpu.count"].status == "fail" and "7 of 8 GPUs visible (GPU 2: GPU is lost)" in checks[
        "gpu.count"].detail


def test_the_labs_gpu_view_drives_the_agent_through_the_fake_module() -> None:
    """nvml/lab-shape.json is NodeHardware.nvml() of a simulated node with thermal_throttle on GPU 3 and
    pcie_downtrained (Gen3 x8) on GPU 5, recorded from clusterctl.sim.node."""
    doc, _ = run_agent(MAKE.agent_env(FIXTURES / "nvml" / "lab-shape.json"),
                       MAKE.agent_args(FIXTURES / "sysfs" / "healthy", FIXTURES / "kernel" / "clean.log"))
    gpu3 = doc["gpu"]["devices"][3]
    assert gpu3["throttle"] == {"mask": 0x60, "reasons": ["sw_thermal", "hw_thermal"]}
    assert gpu3["power_w"] == 70.0 and gpu3["power_limit_w"] == 700.0
    expect = Expectation("lab", gpu_count=8, nvlink=True, ib_hcas=8, ib_rate_gbps=400)
    bad = {c.name: c.detail for c in evaluate_report(doc, expect, load_ruleset("H100-SXM5-80GB")) if c.status != "pass"}
    assert set(bad) == {"gpu.throttle_hw", "gpu.throttle_sw", "gpu.pcie_link", "gpu.pcie_speed"}
    assert bad["gpu.throttle_hw"].startswith("GPU 3 (0000:48:00.0): clocks slowed by hw_thermal (SM 1188 of 1980")
    assert bad["gpu.pcie_link"] == "GPU 5 (0000:68:00.0): PCIe link x8 of x16 (downtrained)"



def test_software_only_reports_the_same_versions_without_the_gpu_reads() -> None:
    """`plan` and `maintain` read every node of a fleet for its versions alone: the short report must agree
    with the full one, or a drift read and validate would disagree about the same node."""
    env = MAKE.agent_env(FIXTURES / "nvml" / "lab-shape.json")
    args = [*MAKE.agent_args(FIXTURES / "sysfs" / "healthy", FIXTURES / "kernel" / "clean.log"),
            "--root", str(FIXTURES / "root")]
    full, _ = run_agent(env, args)
    short, stderr = run_agent(env, [*args, "--software-only"])
    assert short["software"] == full["software"] and short["software"]["driver"] == full["gpu"]["driver"]
    assert set(short) == {"agent", "hostname", "time", "software"} and stderr == ""

# -- the kernel log: journalctl -k, sudo -n journalctl -k, dmesg, or a failure that says how to fix it ----

KERNEL_BIN = FIXTURES / "kernel-bin"  # journalctl, sudo and dmesg stand-ins answering as a stock node does
READERS = {
    "FAKE_JOURNAL": ("group", "journalctl -k -b -o cat --no-pager"),
    "FAKE_SUDO": ("allowed", "sudo -n journalctl -k -b -o cat --no-pager"),
    "FAKE_DMESG": ("allowed", "dmesg"),
}


def kernel_env(nvml: Path = FIXTURES / "nvml" / "h100-healthy.json", **modes: str) -> dict[str, str]:
    env = {**MAKE.agent_env(nvml), "FAKE_KERNEL_LOG": str(FIXTURES / "kernel" / "xid79.log"), **modes}
    env["PATH"] = f"{KERNEL_BIN}:{env['PATH']}"
    return env


NODE_ARGS = ["--sysfs-root", str(FIXTURES / "sysfs" / "healthy"), "--root", str(FIXTURES / "root")]


def test_the_agent_reads_xids_through_the_first_kernel_log_reader_the_user_may_use() -> None:
    for variable, (mode, source) in READERS.items():
        doc, stderr = run_agent(kernel_env(**{variable: mode}), NODE_ARGS)
        assert doc["xid"]["source"] == source, variable
        # journalctl refusing exits 0 with no kernel line: that is a refusal, not "no XIDs".
        assert doc["xid"]["counts"] == {"79": 1, "13": 1}, variable
        assert stderr == ""


def test_a_kernel_log_no_reader_may_read_fails_acceptance_with_each_reason_and_the_fix(tmp_path: Path) -> None:
    doc, _ = run_agent({**kernel_env(), "PATH": str(tmp_path)}, NODE_ARGS)  # none of the readers installed
    assert doc["xid"]["error"] == "cannot read the kernel log: " + "; ".join(
        f"{name}: not installed, or no answer in 15 s" for name in ("journalctl -k", "sudo -n journalctl -k", "dmesg"))
    doc, stderr = run_agent(kernel_env(), NODE_ARGS)
    assert doc["xid"] == {"error": "cannot read the kernel log: journalctl -k: shows only the user's own journal "
                                   "(not in group systemd-journal or adm); sudo -n journalctl -k: a password is "
                                   "required; dmesg: read kernel buffer failed: Operation not permitted"}
    assert "Traceback" not in stderr
    checks = {c.name: c for c in evaluate_report(doc, Expectation("n", gpu_count=8), load_ruleset("H100-SXM5-80GB"))}
    xid = checks["gpu.xid"]
    assert (xid.status, xid.rule) == ("fail", "gpu.kernel_log")
    assert "systemd-journal" in (xid.remediation or "") and "sudo -n journalctl -k" in (xid.remediation or "")


# -- NVSwitch fabric: Fabric Manager's service and each GPU's fabric state --------------------------------

H100_NVSWITCH = Expectation("n", gpu_model="H100-SXM5-80GB", gpu_count=8, nvlink=True)


def fabric_fixture(tmp_path: Path, change: Any) -> Path:
    fixture = json.loads((FIXTURES / "nvml" / "h100-healthy.json").read_text())
    change(fixture)
    path = tmp_path / "nvml.json"
    path.write_text(json.dumps(fixture))
    return path


def fabric_verdict(env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    doc, stderr = run_agent(env, [*NODE_ARGS, "--kernel-log", str(FIXTURES / "kernel" / "clean.log")])
    assert "Traceback" not in stderr
    checks = {c.name: c for c in evaluate_report(doc, H100_NVSWITCH, load_ruleset("H100-SXM5-80GB"))}
    return doc, checks


def test_an_h100_whose_fabric_did_not_initialise_fails_with_reason_and_remedy(tmp_path: Path) -> None:
    def broken(fixture: dict[str, Any]) -> None:
        fixture["gpus"][2]["fabric"]["state"] = 2  # NVML_GPU_FABRIC_STATE_IN_PROGRESS: never completed
        fixture["gpus"][5]["fabric"]["status"] = 999  # completed, but registration failed

    env = {**kernel_env(fabric_fixture(tmp_path, broken)), "FAKE_SYSTEMCTL_FAILED": "nvidia-fabricmanager"}
    doc, checks = fabric_verdict(env)
    assert doc["services"] == {"nvidia-fabricmanager": "failed"}
    assert doc["gpu"]["devices"][2]["fabric"] == {"state": "in_progress", "status": 0, "status_text": "Success",
                                                  "clique_id": 32766}
    service, state = checks["gpu.fabric_manager"], checks["gpu.fabric_state"]
    assert (service.status, service.detail) == ("fail", "nvidia-fabricmanager is failed")
    assert "systemctl status nvidia-fabricmanager" in (service.remediation or "")
    assert state.status == "fail" and state.detail == (
        "GPU 2 (0000:3a:00.0): fabric state in_progress, not completed; "
        "GPU 5 (0000:ab:00.0): fabric registration failed (Unknown Error)")
    assert "fabricmanager.log" in (state.remediation or "")
    healthy_doc, healthy = fabric_verdict(kernel_env())
    assert healthy["gpu.fabric_manager"].status == healthy["gpu.fabric_state"].status == "pass"
    assert healthy["gpu.fabric_state"].detail == "fabric registration completed on all 8 GPUs"


def test_a_driver_without_the_fabric_calls_says_so_and_the_service_alone_judges(tmp_path: Path) -> None:
    # The V call arrived after the plain one: a driver with only the older call still reports the state.
    only_old = fabric_fixture(tmp_path, lambda f: f.update(missing_calls=["nvmlDeviceGetGpuFabricInfoV"]))
    doc, checks = fabric_verdict(kernel_env(only_old))
    assert {d["fabric"]["state"] for d in doc["gpu"]["devices"]} == {"completed"}
    neither = ["nvmlDeviceGetGpuFabricInfoV", "nvmlDeviceGetGpuFabricInfo"]
    doc, checks = fabric_verdict(kernel_env(fabric_fixture(tmp_path, lambda f: f.update(missing_calls=neither))))
    assert all(d["fabric"] == {"unsupported": "not supported by this driver"} for d in doc["gpu"]["devices"])
    assert checks["gpu.fabric_state"].status == "pass"
    assert checks["gpu.fabric_state"].detail == ("fabric state not supported by this driver (driver 550.90.07); "
                                                 "judged by the nvidia-fabricmanager service alone")
    assert checks["gpu.fabric_manager"].status == "pass"
    env = {**kernel_env(fabric_fixture(tmp_path, lambda f: f.update(missing_calls=neither))),
           "FAKE_SYSTEMCTL_FAILED": "nvidia-fabricmanager"}
    doc, checks = fabric_verdict(env)
    assert checks["gpu.fabric_manager"].status == "fail" and checks["gpu.fabric_state"].status == "pass"
    # A node without NVSwitches (inventory nvlink false) is not asked about Fabric Manager at all.
    plain = evaluate_report(doc, Expectation("n", gpu_count=8, nvlink=False), load_ruleset("H100-SXM5-80GB"))
    assert not {"gpu.fabric_manager", "gpu.fabric_state"} & {c.name for c in plain}
