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
    assert checks["gpu.xid"].status == "warn" and checks["gpu.xid"].rule == "gpu.kernel_log"


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
