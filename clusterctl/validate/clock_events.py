"""What each NVML clock-event reason means for a node: the one policy that validate and burn-in both read.

A reason's severity depends on what the GPU was doing, not on which command looked: validation
reads an idle GPU, burn-in a GPU under minutes of full load. Same reason, same condition, same
severity. The bits themselves live in the agent (`CLOCK_EVENT_BITS`), which ships to nodes as one
file; this module only adds the judgement, so the agent stays free of controller imports.

Reasons as documented in NVIDIA's NVML API reference, "Clocks Event Reasons":
https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksEventReasons.html
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from clusterctl.validate.agent import CLOCK_EVENT_BITS

Condition = Literal["idle", "load"]
Severity = Literal["fail", "warn", "info"]
IDLE: Condition = "idle"  # validation: no job on the GPU
LOAD: Condition = "load"  # burn-in: a sustained full load


@dataclass(frozen=True, slots=True)
class ClockEventPolicy:
    label: str
    idle: Severity  # validate: fail or warn is that check's status
    load: Severity  # burn-in: fail fails (and quarantines) the node; warn marks it without failing the run
    check: str | None  # the validation check that lists it; None for reasons that are never a finding
    why: str


POLICY: dict[str, ClockEventPolicy] = {
    "gpu_idle": ClockEventPolicy("GPU idle", "info", "info", None, "Nothing runs, so the clocks drop."),
    "applications_clocks": ClockEventPolicy(
        "applications clocks setting", "info", "info", None, "An operator chose the clocks (nvidia-smi -ac)."),
    "sw_power_cap": ClockEventPolicy(
        "SW power cap", "warn", "info", "gpu.throttle_sw",
        "An idle GPU draws far below its limit, so capping at idle points at a lowered limit; under full "
        "load, running at the power limit is how the GPU is designed to work."),
    "hw_slowdown": ClockEventPolicy(
        "HW slowdown", "fail", "fail", "gpu.throttle_hw",
        "The hardware halved the clocks (thermal or power-supply alarm): a fault whatever the load."),
    "sync_boost": ClockEventPolicy("sync boost", "info", "info", None, "Clocks follow a sync-boost group."),
    "sw_thermal": ClockEventPolicy(
        "SW thermal slowdown", "warn", "fail", "gpu.throttle_sw",
        "At idle it can be heat left by the last job or a hot aisle, worth a look; under a sustained load "
        "it means the cooling cannot carry the GPU's rated power, so the node is slow for every job."),
    "hw_thermal": ClockEventPolicy(
        "HW thermal slowdown", "fail", "fail", "gpu.throttle_hw",
        "The GPU or its memory passed the hardware thermal limit: a cooling fault whatever the load."),
    "hw_power_brake": ClockEventPolicy(
        "HW power brake", "fail", "fail", "gpu.throttle_hw",
        "The chassis asserted the external power-brake signal (PSU or power-supply fault)."),
    "display_clocks": ClockEventPolicy("display clock setting", "info", "info", None, "Display clocks are set."),
}


def reasons(mask: int) -> list[str]:
    """The agent's names for the bits set in `mask`, in bit order (burn-in ranks report raw masks)."""
    return [name for bit, name in CLOCK_EVENT_BITS if mask & bit]


def severity(reason: str, condition: Condition) -> Severity:
    policy = POLICY.get(reason)
    return "info" if policy is None else getattr(policy, condition)


def findings(names: Iterable[str], condition: Condition, check: str | None = None) -> dict[str, Severity]:
    """The reasons among `names` that are a finding (fail or warn) under `condition`, optionally only
    those one validation check lists."""
    found: dict[str, Severity] = {}
    for name in names:
        level = severity(name, condition)
        if level != "info" and (check is None or POLICY[name].check == check):
            found[name] = level
    return found
