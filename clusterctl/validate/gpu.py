"""GPU checks over the agent's NVML facts: presence, model, ECC, row remapping, PCIe, NVLink, clocks.

Each rule becomes one check per node; the GPUs that break it are listed in its detail, so a
node with three hot GPUs shows one temperature finding naming all three.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clusterctl.validate import clock_events
from clusterctl.validate.expect import Expectation
from clusterctl.validate.rules import Ruleset
from clusterctl.verdict import CheckResult, worst

Device = dict[str, Any]
CLOCK_EVENT_CHECKS = ("gpu.throttle_hw", "gpu.throttle_sw")


def gpu_checks(report: dict[str, Any], expect: Expectation, rules: Ruleset) -> list[CheckResult]:
    gpu = report.get("gpu")
    if not isinstance(gpu, dict) or gpu.get("error"):
        if expect.gpu_count == 0:
            return []
        reason = gpu.get("error", "?") if isinstance(gpu, dict) else "the agent reported no GPU section"
        extra = f" ({gpu['detail']})" if isinstance(gpu, dict) and gpu.get("detail") else ""
        return [rules.judge("gpu.driver", True, f"{reason}{extra}")]
    devices: list[Device] = [d for d in gpu.get("devices", []) if not d.get("error")]
    results = [rules.judge("gpu.driver", False, f"driver {gpu.get('driver')}, CUDA {gpu.get('cuda_driver')}"),
               _count(gpu, devices, expect, rules), _model(devices, rules)]
    for rule_id, probe, ok in _per_device(expect):
        issues = [f"{_label(d)}: {msg}" for d in devices if (msg := probe(d, rules))]
        status = _clock_event_status(devices, rule_id) if issues and rule_id in CLOCK_EVENT_CHECKS else None
        results.append(rules.judge(rule_id, bool(issues), "; ".join(issues) or ok, status=status))
    return results


def _label(dev: Device) -> str:
    return f"GPU {dev.get('index')} ({dev.get('pci_bus_id') or '?'})"


def _count(gpu: dict[str, Any], devices: list[Device], expect: Expectation, rules: Ruleset) -> CheckResult:
    lost = [f"GPU {d.get('index')}: {d.get('error')}" for d in gpu.get("devices", []) if d.get("error")]
    seen = len(devices)
    detail = f"{seen} of {expect.gpu_count} GPUs visible"
    if lost:
        detail += " (" + "; ".join(lost) + ")"
    if seen > 0 and seen != expect.gpu_count:
        detail += "; visible: " + ", ".join(d.get("pci_bus_id") or "?" for d in devices)
    return rules.judge("gpu.count", seen != expect.gpu_count, detail, data={"visible": seen})


def _model(devices: list[Device], rules: Ruleset) -> CheckResult:
    wanted = set(rules.nvml_names)
    wrong = [f"{_label(d)} is {d.get('name')!r}" for d in devices if wanted and d.get("name") not in wanted]
    ok = f"all {rules.model or 'GPUs'} ({', '.join(sorted(wanted))})" if wanted else "no model names in the ruleset"
    return rules.judge("gpu.model", bool(wrong), "; ".join(wrong) or ok)


def _per_device(expect: Expectation) -> list[tuple[str, Callable[[Device, Ruleset], str | None], str]]:
    checks: list[tuple[str, Callable[[Device, Ruleset], str | None], str]] = [
        ("gpu.persistence", _persistence, "persistence mode on"),
        ("gpu.ecc_mode", _ecc_mode, "ECC enabled"),
        ("gpu.ecc_uncorrectable", _ecc_volatile, "no uncorrectable ECC errors since driver load"),
        ("gpu.ecc_history", _ecc_aggregate, "no uncorrectable ECC errors in the GPUs' lifetime"),
        ("gpu.retired_pages", _retired_pages, "retired pages below the RMA threshold"),
        ("gpu.remap_pending", _remap_pending, "no row remapping pending"),
        ("gpu.remap_failed", _remap_failed, "no row remapping failures"),
        ("gpu.pcie_link", _pcie_link, "PCIe links at full width"),
        ("gpu.pcie_speed", _pcie_speed, "PCIe links at full generation"),
    ]
    if expect.nvlink:
        checks += [
            ("gpu.nvlink", _nvlink, "all NVLink links up"),
            ("gpu.nvlink_errors", _nvlink_errors, "NVLink error counters low"),
        ]
    checks += [
        ("gpu.throttle_hw", _clock_events("gpu.throttle_hw"), "no hardware clock slowdown"),
        ("gpu.throttle_sw", _clock_events("gpu.throttle_sw"), "no software clock slowdown"),
        ("gpu.temperature", _temperature, "temperatures below the slowdown margin"),
        ("gpu.power", _power, "power limits at the model's default"),
    ]
    return checks


def _persistence(dev: Device, rules: Ruleset) -> str | None:
    return "persistence mode off" if dev.get("persistence_mode") is False else None


def _ecc_mode(dev: Device, rules: Ruleset) -> str | None:
    ecc = dev.get("ecc") or {}
    if ecc.get("enabled") is False:
        return "ECC disabled"
    if ecc.get("pending_enabled") is False:
        return "ECC will be disabled at the next reset"
    return None


def _ecc_volatile(dev: Device, rules: Ruleset) -> str | None:
    count = (dev.get("ecc") or {}).get("volatile_uncorrected")
    limit = rules.param("gpu.ecc_uncorrectable", "max_volatile", 0)
    return f"{count} uncorrectable ECC errors since driver load" if count is not None and count > limit else None


def _ecc_aggregate(dev: Device, rules: Ruleset) -> str | None:
    count = (dev.get("ecc") or {}).get("aggregate_uncorrected")
    limit = rules.param("gpu.ecc_history", "max_aggregate", 0)
    return f"{count} uncorrectable ECC errors in its lifetime" if count is not None and count > limit else None


def _retired_pages(dev: Device, rules: Ruleset) -> str | None:
    pages = dev.get("retired_pages")
    if not pages:
        return None
    total = pages.get("sbe", 0) + pages.get("dbe", 0)
    limit = rules.param("gpu.retired_pages", "max_pages", 60)
    if total >= limit:
        return f"{total} retired pages ({pages.get('dbe', 0)} double-bit), RMA threshold {limit}"
    return None


def _remap_pending(dev: Device, rules: Ruleset) -> str | None:
    rows = dev.get("remapped_rows") or {}
    return f"row remapping pending ({rows.get('uncorrectable', 0)} uncorrectable rows)" if rows.get("pending") else None


def _remap_failed(dev: Device, rules: Ruleset) -> str | None:
    rows = dev.get("remapped_rows") or {}
    return f"row remapping failed ({rows.get('uncorrectable', 0)} uncorrectable rows)" if rows.get("failure") else None


def _pcie_link(dev: Device, rules: Ruleset) -> str | None:
    pcie = dev.get("pcie") or {}
    problems = []
    width, width_max, gen_max = pcie.get("width_cur"), pcie.get("width_max"), pcie.get("gen_max")
    want_width = rules.param("gpu.pcie_link", "width")
    want_gen = rules.param("gpu.pcie_link", "gen")
    if width is not None and width_max is not None and width < width_max:
        problems.append(f"PCIe link x{width} of x{width_max} (downtrained)")
    if width_max is not None and want_width and width_max < want_width:
        problems.append(f"link supports only x{width_max} (expected x{want_width})")
    if gen_max is not None and want_gen and gen_max < want_gen:
        problems.append(f"link supports only Gen{gen_max} (expected Gen{want_gen})")
    return "; ".join(problems) or None


def _pcie_speed(dev: Device, rules: Ruleset) -> str | None:
    pcie = dev.get("pcie") or {}
    cur, top = pcie.get("gen_cur"), pcie.get("gen_max")
    return f"PCIe Gen{cur} of Gen{top}" if cur is not None and top is not None and cur < top else None


def _nvlink(dev: Device, rules: Ruleset) -> str | None:
    links = dev.get("nvlink") or []
    down = [str(link["link"]) for link in links if not link.get("active")]
    want = rules.param("gpu.nvlink", "links")
    problems = []
    if down:
        problems.append(f"NVLink link{'s' if len(down) > 1 else ''} {', '.join(down)} down")
    if want and len(links) < want:
        problems.append(f"{len(links)} of {want} NVLink links present")
    return "; ".join(problems) or None


def _nvlink_errors(dev: Device, rules: Ruleset) -> str | None:
    over = []
    for counter in ("replay", "recovery", "crc_flit", "crc_data"):
        total = sum(link.get(counter) or 0 for link in dev.get("nvlink") or [])
        limit = rules.param("gpu.nvlink_errors", f"max_{counter}", 0)
        if total > limit:
            over.append(f"NVLink {counter} {total} (max {limit})")
    return ", ".join(over) or None


def _active(dev: Device) -> list[str]:
    return (dev.get("throttle") or {}).get("reasons", [])


def _clock_events(check: str) -> Callable[[Device, Ruleset], str | None]:
    def probe(dev: Device, rules: Ruleset) -> str | None:
        active = list(clock_events.findings(_active(dev), clock_events.IDLE, check))
        if not active:
            return None
        clocks = dev.get("clocks") or {}
        speed = f" (SM {clocks['sm']} of {clocks['sm_max']} MHz)" if clocks.get("sm") and clocks.get("sm_max") else ""
        return "clocks slowed by " + ", ".join(active) + speed

    return probe


def _clock_event_status(devices: list[Device], check: str) -> str:
    """The clock-event policy grades these checks, so validate and burn-in agree on each reason."""
    return worst(s for d in devices for s in clock_events.findings(_active(d), clock_events.IDLE, check).values())


def _temperature(dev: Device, rules: Ruleset) -> str | None:
    temp, slowdown = dev.get("temperature_c"), dev.get("temperature_slowdown_c")
    margin = rules.param("gpu.temperature", "margin_c", 10)
    if temp is None or slowdown is None or temp < slowdown - margin:
        return None
    return f"{temp} °C, slowdown at {slowdown} °C"


def _power(dev: Device, rules: Ruleset) -> str | None:
    draw, limit = dev.get("power_w"), dev.get("power_limit_w")
    default = rules.param("gpu.power", "limit_w")
    if limit is not None and default and limit < default * 0.99:
        return f"power limit {limit:.0f} W, the model's default is {default} W"
    if draw is not None and limit is not None and draw > limit * 1.02:
        return f"drawing {draw:.0f} W over its {limit:.0f} W limit"
    return None
