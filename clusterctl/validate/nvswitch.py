"""NVSwitch fabric checks: Fabric Manager runs, and every GPU's fabric registration completed.

On an HGX board the GPUs reach each other through NVSwitches that nvidia-fabricmanager brings up.
A node whose fabric did not come up still shows every GPU and every NVLink to NVML, yet CUDA
refuses work with error 802 (system not yet initialized): only the service state and NVML's fabric
state (Hopper and later) show it. Drivers older than the fabric call leave the service state alone
to judge, and say so.
"""

from __future__ import annotations

from typing import Any

from clusterctl.validate.expect import Expectation
from clusterctl.validate.rules import Ruleset
from clusterctl.verdict import CheckResult

UNIT = "nvidia-fabricmanager"


def nvswitch_checks(report: dict[str, Any], expect: Expectation, rules: Ruleset) -> list[CheckResult]:
    if not (expect.nvlink and rules.param("gpu.fabric_manager", "nvswitch", False)):
        return []
    results = [_service(report, rules)]
    gpu = report.get("gpu")
    if isinstance(gpu, dict) and not gpu.get("error"):  # without NVML, gpu.driver already fails the node
        results.append(_fabric_state(gpu, rules))
    return results


def _service(report: dict[str, Any], rules: Ruleset) -> CheckResult:
    services = report.get("services")
    if not isinstance(services, dict) or services.get("error"):
        reason = services.get("error") if isinstance(services, dict) else "the agent reported no service states"
        return rules.judge("gpu.fabric_manager", True, f"cannot tell whether {UNIT} runs: {reason}")
    state = services.get(UNIT)
    if state is None:
        return rules.judge("gpu.fabric_manager", True, f"cannot tell whether {UNIT} runs: no systemctl on the node")
    return rules.judge("gpu.fabric_manager", state != "active", f"{UNIT} is {state}")


def _fabric_state(gpu: dict[str, Any], rules: Ruleset) -> CheckResult:
    problems, unsupported = [], set()
    devices = [d for d in gpu.get("devices", []) if not d.get("error")]
    for dev in devices:
        fabric = dev.get("fabric")
        label = f"GPU {dev.get('index')} ({dev.get('pci_bus_id') or '?'})"
        if not isinstance(fabric, dict):
            unsupported.add("not reported by this agent")
        elif fabric.get("unsupported"):
            unsupported.add(str(fabric["unsupported"]))
        elif fabric.get("error"):
            problems.append(f"{label}: fabric state unreadable ({fabric['error']})")
        elif fabric.get("state") == "not_supported":
            unsupported.add("not supported by this GPU")
        elif fabric.get("state") != "completed":
            problems.append(f"{label}: fabric state {fabric.get('state')}, not completed")
        elif fabric.get("status") != 0:
            why = fabric.get("status_text") or fabric.get("status")
            problems.append(f"{label}: fabric registration failed ({why})")
    if problems:
        return rules.judge("gpu.fabric_state", True, "; ".join(problems))
    if unsupported and not any(_completed(d) for d in devices):
        why = " / ".join(sorted(unsupported))
        return rules.judge("gpu.fabric_state", False,
                           f"fabric state {why} (driver {gpu.get('driver')}); judged by the {UNIT} service alone")
    if unsupported:
        return rules.judge("gpu.fabric_state", True, "fabric state known for only some GPUs: "
                           + ", ".join(f"GPU {d.get('index')}" for d in devices if not _completed(d)))
    return rules.judge("gpu.fabric_state", False, f"fabric registration completed on all {len(devices)} GPUs")


def _completed(dev: dict[str, Any]) -> bool:
    fabric = dev.get("fabric")
    return isinstance(fabric, dict) and fabric.get("state") == "completed" and fabric.get("status") == 0
