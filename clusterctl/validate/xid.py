"""XID events since boot, judged by the ruleset's XID table (NVIDIA's XID catalog actions).

One check per XID number, named gpu.xid.<n>, so a node with an application fault (13) and a
GPU off the bus (79) shows both, each with its own action; dcgm-exporter's last-XID gauge
hides repeats, so the count per XID is kept in the detail and data. A kernel log the agent could
not read fails under gpu.kernel_log: an acceptance that cannot see XIDs is not one.
"""

from __future__ import annotations

from typing import Any

from clusterctl.validate.rules import Ruleset
from clusterctl.verdict import CheckResult


def xid_checks(report: dict[str, Any], rules: Ruleset) -> list[CheckResult]:
    xid = report.get("xid")
    if not isinstance(xid, dict) or xid.get("error"):
        reason = xid.get("error") if isinstance(xid, dict) else "the agent reported no kernel log section"
        return [rules.judge("gpu.kernel_log", True, str(reason), name="gpu.xid")]
    counts: dict[str, int] = xid.get("counts") or {}
    if not counts:
        read_by = f" (read by {xid['source']})" if xid.get("source") else ""
        return [rules.judge("gpu.kernel_log", False, f"no XID events since boot{read_by}", name="gpu.xid")]
    gpus = _gpus_by_bus(report)
    results = []
    for number in sorted(counts, key=int):
        entry = rules.xid(int(number))
        buses = sorted({e.get("pci", "?") for e in xid.get("events", []) if e.get("xid") == int(number)})
        where = ", ".join(_gpu_label(bus, gpus) for bus in buses) or "unknown GPU"
        times = f" ×{counts[number]}" if counts[number] > 1 else ""
        results.append(CheckResult(
            name=f"gpu.xid.{number}",
            status=entry.severity,
            detail=f"XID {number}{times} on {where}: {entry.meaning}",
            rule=f"xid.{number}" if entry.xid is not None else "xid.unknown",
            remediation=entry.remediation,
            data={"xid": int(number), "count": counts[number], "pci": buses},
        ))
    return results


def _gpus_by_bus(report: dict[str, Any]) -> dict[str, int]:
    gpu = report.get("gpu")
    devices = gpu.get("devices", []) if isinstance(gpu, dict) else []
    return {d["pci_bus_id"]: d["index"] for d in devices if d.get("pci_bus_id")}


def _gpu_label(bus: str, gpus: dict[str, int]) -> str:
    """The kernel names 0000:9a:00, NVML 0000:9a:00.0: match on the prefix to say which GPU index."""
    for full, index in gpus.items():
        if full.startswith(bus):
            return f"GPU {index} ({bus})"
    return f"PCI {bus}"
