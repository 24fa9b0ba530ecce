"""InfiniBand checks over the agent's sysfs facts: HCA count, port state, rate, error counters.

Only ports whose link layer is InfiniBand count: a RoCE or management Ethernet port on the
same ConnectX is not part of the compute fabric the inventory describes.
"""

from __future__ import annotations

from typing import Any

from clusterctl.validate.expect import Expectation
from clusterctl.validate.rules import Ruleset
from clusterctl.verdict import CheckResult

COUNTERS = ("symbol_error", "link_downed", "link_error_recovery")


def fabric_checks(report: dict[str, Any], expect: Expectation, rules: Ruleset) -> list[CheckResult]:
    if not expect.ib_hcas:
        return []
    ib = report.get("infiniband")
    if not isinstance(ib, dict) or ib.get("error"):
        reason = ib.get("error") if isinstance(ib, dict) else "the agent reported no InfiniBand section"
        return [rules.judge("fabric.ib_hcas", True, f"cannot read InfiniBand state: {reason}")]
    hcas = [h for h in ib.get("hcas", []) if any(_is_ib(p) for p in h.get("ports", []))]
    ports = [(h["name"], p) for h in hcas for p in h.get("ports", []) if _is_ib(p)]
    results = [rules.judge(
        "fabric.ib_hcas", len(hcas) != expect.ib_hcas,
        f"{len(hcas)} of {expect.ib_hcas} InfiniBand HCAs" + (f" ({', '.join(h['name'] for h in hcas)})"
                                                              if len(hcas) != expect.ib_hcas else ""),
    )]
    down = [f"{hca} port {p.get('port')}: {p.get('state')}/{p.get('phys_state')}" for hca, p in ports if not _up(p)]
    results.append(rules.judge("fabric.ib_port_state", bool(down), "; ".join(down) or "all ports ACTIVE/LinkUp"))
    want = expect.ib_rate_gbps
    slow = [
        f"{hca} port {p.get('port')}: {p.get('rate') or 'no rate'} (expected {want} Gb/s)"
        for hca, p in ports
        if want and _up(p) and (p.get("rate_gbps") or 0) < want
    ]
    results.append(rules.judge("fabric.ib_rate", bool(slow), "; ".join(slow) or f"all active ports at {want} Gb/s"))
    noisy = []
    for hca, p in ports:
        over = [
            f"{name} {value} (max {limit})"
            for name in COUNTERS
            if (value := (p.get("counters") or {}).get(name)) is not None
            and value > (limit := rules.param("fabric.ib_errors", f"max_{name}", 0))
        ]
        if over:
            noisy.append(f"{hca} port {p.get('port')}: " + ", ".join(over))
    results.append(rules.judge("fabric.ib_errors", bool(noisy), "; ".join(noisy) or "port error counters low"))
    return results


def _is_ib(port: dict[str, Any]) -> bool:
    return port.get("link_layer") in (None, "InfiniBand")


def _up(port: dict[str, Any]) -> bool:
    return port.get("state") == "ACTIVE" and port.get("phys_state") == "LinkUp"
