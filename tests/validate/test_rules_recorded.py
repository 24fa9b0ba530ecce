"""The rules against recorded agent reports: each fault fails the right check, under the right rule,
with the right hint; the healthy node passes with no warning at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clusterctl.validate.evaluate import evaluate_report
from clusterctl.validate.expect import Expectation
from clusterctl.validate.rules import load_ruleset
from clusterctl.verdict import NodeVerdict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "validate"
H100 = Expectation(
    node="gpu-node", rack="r1", gpu_model="H100-SXM5-80GB", gpu_count=8, nvlink=True, ib_hcas=8, ib_rate_gbps=400,
    software={"driver": "550.90.07", "cuda": "12.4", "nccl": "2.21.5", "ofed": "23.10-1.1.9.0",
              "fabricmanager": "550.90.07", "dcgm": "3.3.6"},
)
RULES = load_ruleset("H100-SXM5-80GB")


def report(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "agent" / f"{name}.json").read_text())


def verdict(name: str, expect: Expectation = H100) -> NodeVerdict:
    return NodeVerdict("gpu-node", evaluate_report(report(name), expect, RULES))


def bad(v: NodeVerdict) -> dict[str, tuple[str, str | None, str]]:
    return {c.name: (c.status, c.rule, c.detail) for c in v.checks if c.status != "pass"}


def test_healthy_h100_passes_every_check_without_warnings() -> None:
    v = verdict("healthy")
    assert v.status == "pass" and bad(v) == {}
    names = {c.name for c in v.checks}
    assert {"gpu.count", "gpu.nvlink", "gpu.xid", "fabric.ib_rate", "software.nccl", "software.ofed"} <= names


@pytest.mark.parametrize(
    ("scenario", "check", "status", "detail_part", "hint_part"),
    [
        ("xid79", "gpu.xid.79", "fail", "GPU 4 (0000:9a:00)", "GPU fell off the bus — reseat or RMA"),
        ("ecc-uncorrectable", "gpu.ecc_uncorrectable", "fail", "GPU 3 (0000:5d:00.0): 2 uncorrectable",
         "DCGM diagnostics"),
        ("remap-pending", "gpu.remap_pending", "fail", "GPU 5 (0000:ab:00.0): row remapping pending",
         "Reset the GPU"),
        ("remap-failed", "gpu.remap_failed", "fail", "GPU 6 (0000:ba:00.0): row remapping failed", "RMA"),
        ("pcie-downtrained", "gpu.pcie_link", "fail", "GPU 2 (0000:3a:00.0): PCIe link x8 of x16", "Reseat"),
        ("nvlink-down", "gpu.nvlink", "fail", "GPU 1 (0000:2a:00.0): NVLink link 4 down", "fabric manager"),
        ("ib-port-down", "fabric.ib_port_state", "fail", "mlx5_3 port 1: DOWN/Disabled", "cable"),
        ("ib-degraded", "fabric.ib_rate", "fail", "mlx5_6 port 1: 200 Gb/sec (4X HDR) (expected 400", "cable"),
        ("throttling", "gpu.throttle_hw", "fail", "GPU 7 (0000:db:00.0): clocks slowed by hw_slowdown, hw_thermal",
         "cooling"),
        ("missing-gpu", "gpu.count", "fail", "7 of 8 GPUs visible", "reseat"),
        ("no-driver", "gpu.driver", "fail", "no NVIDIA driver (NVML: Driver Not Loaded)", "NVIDIA driver"),
    ],
)
def test_each_fault_fails_its_check_with_rule_and_hint(
    scenario: str, check: str, status: str, detail_part: str, hint_part: str
) -> None:
    v = verdict(scenario)
    found = {c.name: c for c in v.checks}
    assert check in found, sorted(found)
    result = found[check]
    assert result.status == status
    assert detail_part in result.detail
    assert hint_part in (result.remediation or "")
    expected_rule = f"xid.{check.rsplit('.', 1)[1]}" if check.startswith("gpu.xid.") else check
    assert result.rule == expected_rule
    order = ["pass", "warn", "fail"]
    assert order.index(v.status) >= order.index(status)
    assert v.status == max((c.status for c in v.checks), key=order.index)


def test_faults_do_not_leak_into_unrelated_checks() -> None:
    assert set(bad(verdict("pcie-downtrained"))) == {"gpu.pcie_link"}
    assert set(bad(verdict("remap-failed"))) == {"gpu.remap_failed"}
    assert set(bad(verdict("ib-port-down"))) == {"fabric.ib_port_state"}
    # Degraded: a slow port with symbol errors and link flaps; the counters are a warning of their own.
    degraded = bad(verdict("ib-degraded"))
    assert set(degraded) == {"fabric.ib_rate", "fabric.ib_errors"} and degraded["fabric.ib_errors"][0] == "warn"
    assert "symbol_error 4711 (max 10), link_downed 3 (max 0)" in degraded["fabric.ib_errors"][2]


def test_xid_table_severity_per_number_and_application_faults_only_warn() -> None:
    checks = bad(verdict("xid79"))
    assert checks["gpu.xid.79"][0] == "fail"
    assert checks["gpu.xid.13"] == ("warn", "xid.13", checks["gpu.xid.13"][2])
    assert "GPU 1 (0000:2a:00)" in checks["gpu.xid.13"][2]


def test_no_driver_is_one_clear_failure_and_the_rest_still_judged() -> None:
    v = verdict("no-driver")
    gpu = [c for c in v.checks if c.name.startswith("gpu.")]
    assert [(c.name, c.status) for c in gpu] == [("gpu.driver", "fail"), ("gpu.fabric_manager", "pass"),
                                                 ("gpu.xid", "pass")]
    # Fabric and software are still checked: the driver version comes from /sys/module/nvidia.
    assert all(c.status == "pass" for c in v.checks if c.name.startswith(("fabric.", "software.")))


def test_expectations_come_from_the_inventory_not_from_the_node() -> None:
    a100 = Expectation(node="gpu-node", gpu_model="A100-SXM4-80GB", gpu_count=8, nvlink=True,
                       software={"cuda": "12.2", "nccl": "2.21"})
    v = NodeVerdict("gpu-node", evaluate_report(report("healthy"), a100, load_ruleset("A100-SXM4-80GB")))
    problems = bad(v)
    assert problems["gpu.model"][0] == "fail" and "'NVIDIA H100 80GB HBM3'" in problems["gpu.model"][2]
    assert problems["software.cuda"][2] == "12.4.1, expected 12.2"
    assert "software.nccl" not in problems  # 2.21.5 is a 2.21 release
    # The A100 ruleset expects 12 NVLink links; the H100 has 18 all up: not a failure.
    assert "gpu.nvlink" not in problems


def test_missing_software_fails_and_a_wrong_report_is_an_agent_failure() -> None:
    expect = Expectation(node="n", software={"dcgm": "3.3"})
    doc = report("healthy")
    doc["software"]["dcgm"] = None
    checks = {c.name: c for c in evaluate_report(doc, expect, RULES)}
    assert checks["software.dcgm"].status == "fail" and checks["software.dcgm"].detail == "not found (expected 3.3)"
    assert [c.name for c in evaluate_report(["not", "a", "report"], expect, RULES)] == ["agent"]
