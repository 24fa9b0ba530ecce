"""The figures one check round keeps per node, from what validation already collected: the agent's
NVML, kernel-log and sysfs facts, and the BMC's telemetry.

One number per node and metric (the worst GPU, fan or port; counters summed), so a node's history
is one series per metric and peers compare like with like. The label says which part the figure
came from, so a regression can name the GPU.

`METRICS` says how each is judged over time: a `level` must not drop (clocks, fan speed), a `heat`
must not climb (temperatures), a `counter` must not grow faster than its limit per day (ECC, row
remaps, XIDs, link errors); `info` is only stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # level | heat | counter | info
    unit: str
    words: str
    remediation: str
    per_day: float | None = None  # counters: growth per day that makes a regression
    peers: bool = False  # judged against the node's peers in the round too


def _m(*args: Any, **kwargs: Any) -> Metric:
    return Metric(*args, **kwargs)


_ECC = ("Schedule the GPU for DCGM diagnostics (dcgmi diag -r 3) in the next maintenance window; "
        "RMA it if correctable errors keep climbing or rows stop remapping.")
_LINK = "Clean or replace the cable or transceiver of that port in the next maintenance window; check the switch port."
METRICS: dict[str, Metric] = {m.name: m for m in [
    _m("gpu.sm_clock_mhz", "level", "MHz", "slowest GPU's SM clock",
       "Compare clocks, power limit, PCIe and NVLink with a healthy node; run DCGM diagnostics; reseat or RMA the GPU.",
       peers=True),
    _m("gpu.temperature_c", "heat", "°C", "hottest GPU's temperature",
       "Check airflow, fan speeds and inlet temperature; a single hot GPU may need its heatsink reseated.", peers=True),
    _m("gpu.power_w", "info", "W", "GPUs' power draw", ""),
    _m("gpu.ecc_corrected", "counter", "errors", "correctable ECC errors (lifetime)", _ECC, per_day=100),
    _m("gpu.ecc_uncorrected", "counter", "errors", "uncorrectable ECC errors (lifetime)",
       "Drain the node; reset the GPU and run DCGM diagnostics level 3; RMA if the errors come back.", per_day=0.5),
    _m("gpu.remapped_rows", "counter", "rows", "remapped rows", _ECC, per_day=1),
    _m("gpu.remap_pending", "info", "GPUs", "GPUs with a row remap pending", ""),
    _m("gpu.xid", "counter", "XIDs", "XIDs in the kernel log since boot",
       "Look the XIDs up in NVIDIA's XID catalog; drain the node for hardware XIDs (48, 63, 64, 74, 79, 92-95).",
       per_day=2),
    _m("gpu.pcie_replay", "counter", "replays", "PCIe replays (link retransmissions)",
       "Reseat the GPU or its riser in the next maintenance window; check the slot's PCIe settings.", per_day=100),
    _m("gpu.nvlink_errors", "counter", "errors", "NVLink replay, recovery and CRC errors",
       "Watch the link; if counters keep rising, drain and run DCGM NVLink diagnostics.", per_day=500),
    _m("ib.symbol_error", "counter", "errors", "InfiniBand symbol errors", _LINK, per_day=100),
    _m("ib.link_error_recovery", "counter", "events", "InfiniBand link error recoveries", _LINK, per_day=2),
    _m("ib.link_downed", "counter", "events", "InfiniBand link-down events", _LINK, per_day=1),
    _m("ib.port_rcv_errors", "counter", "errors", "InfiniBand receive errors", _LINK, per_day=100),
    _m("ib.rate_gbps", "level", "Gb/s", "slowest InfiniBand port's rate", _LINK, peers=True),
    _m("bmc.inlet_c", "heat", "°C", "inlet temperature",
       "Check the cold aisle and the rack's blanking panels; an inlet creeping up precedes thermal slowdowns.",
       peers=True),
    _m("bmc.fan_rpm", "level", "RPM", "slowest fan's speed",
       "Replace the fan in the next maintenance window, before it fails and the GPUs slow down.", peers=True),
    _m("bmc.power_w", "info", "W", "node's power draw", ""),
    _m("fabric.busbw_gbs", "level", "GB/s", "all-reduce bus bandwidth (its faster pair)",
       "Check the node's InfiniBand ports and cables (symbol errors, rate) and its NVLink; rerun "
       "`clusterctl validate --checks bandwidth` on it with two healthy partners.", peers=True),
    _m("fabric.ring_busbw_gbs", "info", "GB/s", "all-reduce bus bandwidth of the ring it was in", ""),
    _m("burnin.tokens_per_s", "level", "tokens/s", "burn-in throughput of its slowest GPU",
       "Compare clocks, power limit, PCIe and NVLink with a healthy node; run DCGM diagnostics "
       "(dcgmi diag -r 3); reseat or RMA the GPU that is slow.", peers=True),
    _m("burnin.loss", "info", "", "burn-in's last training loss", ""),
]}
XID_PREFIX = "gpu.xid."  # gpu.xid.<code>: each XID's count, stored for the per-XID trends (info)


@dataclass(frozen=True)
class Figure:
    node: str
    metric: str
    value: float
    labels: dict[str, Any] | None = None


def metric(name: str) -> Metric | None:
    """The catalog entry; per-XID counts share the XID counter's words and remedy, and are only stored."""
    if name.startswith(XID_PREFIX):
        base = METRICS["gpu.xid"]
        return Metric(name, "info", base.unit, f"XID {name[len(XID_PREFIX):]} count", base.remediation)
    return METRICS.get(name)


def node_figures(node: str, report: Any, telemetry: Any) -> list[Figure]:
    """Every figure of one node: the agent's report (a dict, or None when SSH failed), the BMC's Telemetry."""
    found: list[Figure] = []
    if isinstance(report, Mapping):
        found += [Figure(node, name, float(value), labels) for name, value, labels in _agent(report)]
    if telemetry is not None:
        found += [Figure(node, name, float(value), labels) for name, value, labels in _bmc(telemetry)]
    return found


Row = tuple[str, float, "dict[str, Any] | None"]


def _agent(report: Mapping[str, Any]) -> Iterator[Row]:
    gpu = report.get("gpu")
    devices = [d for d in gpu.get("devices", []) if not d.get("error")] if isinstance(gpu, Mapping) else []
    if devices:
        yield from _worst(devices, "gpu.sm_clock_mhz", lambda d: (d.get("clocks") or {}).get("sm"), min)
        yield from _worst(devices, "gpu.temperature_c", lambda d: d.get("temperature_c"), max)
        yield from _total(devices, "gpu.power_w", lambda d: d.get("power_w"))
        yield from _total(devices, "gpu.ecc_corrected", lambda d: (d.get("ecc") or {}).get("aggregate_corrected"))
        yield from _total(devices, "gpu.ecc_uncorrected", lambda d: (d.get("ecc") or {}).get("aggregate_uncorrected"))
        yield from _total(devices, "gpu.remapped_rows", _remapped)
        yield from _total(devices, "gpu.remap_pending", lambda d: int(bool((d.get("remapped_rows") or {})
                                                                           .get("pending"))))
        yield from _total(devices, "gpu.nvlink_errors", _nvlink_errors)
        yield from _total(devices, "gpu.pcie_replay", lambda d: (d.get("pcie") or {}).get("replay"))
    xid = report.get("xid")
    if isinstance(xid, Mapping) and isinstance(xid.get("counts"), Mapping):
        counts = {str(k): int(v) for k, v in xid["counts"].items() if isinstance(v, int)}
        yield "gpu.xid", float(sum(counts.values())), None
        for code, count in sorted(counts.items()):
            yield XID_PREFIX + code, float(count), None
    ib = report.get("infiniband")
    ports = [(h.get("name"), p) for h in ib.get("hcas", []) for p in h.get("ports", [])] \
        if isinstance(ib, Mapping) else []
    if ports:
        for counter in ("symbol_error", "link_error_recovery", "link_downed", "port_rcv_errors"):
            values = [(name, (p.get("counters") or {}).get(counter)) for name, p in ports]
            known = [(name, v) for name, v in values if isinstance(v, int)]
            if known:
                worst = max(known, key=lambda nv: nv[1])
                yield f"ib.{counter}", float(sum(v for _, v in known)), {"worst": worst[0]} if worst[1] else None
        rates = [(name, p.get("rate_gbps")) for name, p in ports if isinstance(p.get("rate_gbps"), int | float)]
        if rates:
            name, rate = min(rates, key=lambda nv: nv[1])
            yield "ib.rate_gbps", float(rate), {"port": name}


def _worst(devices: list[dict[str, Any]], name: str, read: Any, pick: Any) -> Iterator[Row]:
    values = [(d.get("index"), read(d)) for d in devices]
    known = [(i, v) for i, v in values if isinstance(v, int | float)]
    if known:
        index, value = pick(known, key=lambda iv: iv[1])
        yield name, float(value), {"gpu": index}


def _total(devices: list[dict[str, Any]], name: str, read: Any) -> Iterator[Row]:
    values = [(d.get("index"), read(d)) for d in devices]
    known = [(i, v) for i, v in values if isinstance(v, int | float)]
    if known:
        index, top = max(known, key=lambda iv: iv[1])
        yield name, float(sum(v for _, v in known)), {"gpu": index} if top else None


def _remapped(dev: dict[str, Any]) -> int | None:
    rows = dev.get("remapped_rows")
    if not isinstance(rows, Mapping):
        return None
    return int(rows.get("correctable") or 0) + int(rows.get("uncorrectable") or 0)


def _nvlink_errors(dev: dict[str, Any]) -> int | None:
    links = dev.get("nvlink")
    if not links:
        return None
    return sum(int(link.get(c) or 0) for link in links for c in ("replay", "recovery", "crc_flit", "crc_data"))


def _bmc(t: Any) -> Iterator[Row]:
    if t.inlet_c is not None:
        yield "bmc.inlet_c", float(t.inlet_c), None
    if t.power_watts is not None:
        yield "bmc.power_w", float(t.power_watts), None
    fans = [(f.name, f.rpm) for f in t.fans if f.rpm is not None]
    if fans:
        name, rpm = min(fans, key=lambda nv: nv[1])
        yield "bmc.fan_rpm", float(rpm), {"fan": name}


def bandwidth_figures(run: Any) -> dict[str, Figure]:
    """Each node's all-reduce figure from a BandwidthRun: the faster of its pairs. A pair runs at its slower
    node's speed and every node meets both ring neighbours, so a slow node's pairs are all slow while
    its healthy partners keep one fast pair (the attribution validate's bandwidth check makes too)."""
    best: dict[str, tuple[float, str]] = {}
    for m in run.pairs:
        if m.busbw_gbs is None:
            continue
        for node in m.nodes:
            partner = next((n for n in m.nodes if n != node), node)
            if node not in best or m.busbw_gbs > best[node][0]:
                best[node] = (float(m.busbw_gbs), partner)
    return {node: Figure(node, "fabric.busbw_gbs", value, {"partner": partner})
            for node, (value, partner) in best.items()}


def ring_figures(run: Any) -> dict[str, Figure]:
    """Each ring member's ring bandwidth (the ring's, shared by all): stored, for the trend of a whole ring."""
    return {node: Figure(node, "fabric.ring_busbw_gbs", float(m.busbw_gbs), {"ring": len(m.nodes)})
            for m in run.rings if m.busbw_gbs is not None for node in m.nodes}
