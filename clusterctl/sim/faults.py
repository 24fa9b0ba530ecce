"""Fault kinds the lab can inject, the fault file, and parameter validation.

A fault file looks like::

    faults:
      - {node: gpu0007, kind: xid, params: {code: 79, gpu: 3}}
      - {node: gpu0012, kind: psu_failed, params: {psu: 1}}

Faults are stored on the simulated server and their effects are computed when a
resource is read, so clearing a fault restores the healthy view at once (events
already written to the SEL stay, as on a real BMC). faults.example.yaml beside this module
shows every kind with its defaults. `FAULT_KINDS` is the catalog:
each kind says where it shows (`bmc`: through Redfish; `node`: in the node hardware
model that the SSH side serves) and its parameters with defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterctl.sim.errors import FaultError


@dataclass(frozen=True)
class FaultKind:
    name: str
    side: str  # "bmc" | "node"
    doc: str
    params: dict[str, Any] = field(default_factory=dict)  # name -> default (type taken from it)


def _k(name: str, side: str, doc: str, **params: Any) -> FaultKind:
    return FaultKind(name, side, doc, params)


FAULT_KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in [
        _k("bmc_unreachable", "bmc", "The BMC accepts TCP/TLS but never answers (clients time out)."),
        _k("bmc_slow", "bmc", "Every answer is delayed by delay_ms.", delay_ms=3000),
        _k(
            "bmc_503",
            "bmc",
            "Requests get 503 with Retry-After; rate is the share of requests hit.",
            retry_after=5,
            rate=1.0,
        ),
        _k(
            "session_limit",
            "bmc",
            "Session creation fails with RAC0218 (503) once max sessions exist.",
            max=0,
        ),
        _k(
            "firmware_update_fails",
            "bmc",
            "Firmware jobs end Failed; component '' means every one.",
            component="",
        ),
        _k("firmware_update_hangs", "bmc", "Firmware jobs stop at 42% and never finish.", component=""),
        _k("activation_fails", "bmc", "An image that waits for an AC power cycle (gpu, cpld) does not take "
           "effect after it; component '' means every one.", component=""),
        _k(
            "firmware_completes_with_errors",
            "bmc",
            "Firmware jobs end CompletedWithErrors and the old version keeps running; component '' means every one.",
            component="",
        ),
        _k("os_install_hangs", "bmc", "The installer booted from virtual media never finishes (a mirror that stalls, "
           "a kickstart waiting at a prompt): the node never answers SSH."),
        _k("media_eject_fails", "bmc", "VirtualMedia.EjectMedia fails with an internal error; the ISO stays mounted."),
        _k("reboot_fails", "bmc", "The reboot that applies BIOS/SCP configuration jobs fails: they end RebootFailed."),
        _k("psu_failed", "bmc", "A PSU (1-based) reports Critical and no output.", psu=1),
        _k("fan_failed", "bmc", "A fan (1-based) reads 0 RPM, Critical.", fan=1),
        _k(
            "inlet_temp_high",
            "bmc",
            "Inlet temperature reads celsius (over the critical threshold).",
            celsius=47.0,
        ),
        _k("power_over_cap", "bmc", "Power draw exceeds the chassis power limit by excess_w.", excess_w=900),
        _k("gpu_missing", "bmc", "A GPU (0-based) is absent from Redfish and from the node.", gpu=0),
        _k("xid", "bmc", "An NVIDIA XID on a GPU: an SEL entry and the GPU's XID record.", code=79, gpu=0),
        _k(
            "ecc_uncorrectable",
            "node",
            "Volatile and aggregate uncorrectable ECC errors on a GPU.",
            gpu=0,
            count=1,
        ),
        _k("row_remap_pending", "node", "A GPU has a row remap pending (needs a reset).", gpu=0),
        _k("pcie_downtrained", "node", "A GPU's PCIe link runs below its maximum.", gpu=0, gen=4, width=8),
        _k("nvlink_down", "node", "An NVLink link of a GPU is inactive.", gpu=0, link=0),
        _k("ib_port_down", "node", "An InfiniBand port (0-based HCA index) is DOWN/Disabled.", port=0),
        _k(
            "ib_degraded",
            "node",
            "An IB port runs at rate_gbps with symbol errors climbing.",
            port=0,
            rate_gbps=200,
            symbol_errors=1200,
        ),
        _k(
            "ib_slow",
            "node",
            "Every IB port is Active at full rate, yet all-reduce runs at factor of the expected bandwidth "
            "(a cable retransmitting, a congested leaf): only the bandwidth check sees it.",
            factor=0.5,
        ),
        _k(
            "kernel_log_refused",
            "node",
            "The SSH user may not read the kernel log (not in group systemd-journal or adm, dmesg restricted); "
            "sudo true lets `sudo -n journalctl -k` through, as a sudoers rule for it would.",
            sudo=False,
        ),
        _k(
            "fabric_manager_failed",
            "node",
            "nvidia-fabricmanager has failed and no GPU's NVSwitch fabric completed (NVML fabric state "
            "in_progress): CUDA would fail with error 802.",
        ),
        _k("thermal_throttle", "node", "A GPU runs hot and reports HW thermal slowdown.", gpu=0, celsius=91),
        _k("gpu_slow", "node", "A GPU delivers factor of its normal throughput.", gpu=0, factor=0.33),
    ]
}

# Faults that develop over simulated time (clusterctl/sim/clock.py: days pass with --time-scale, or when
# the control API advances the clock), so periodic checks have a trend to find. Each starts at
# start_day (simulated days since the lab started) and grows linearly from there.
DEVELOPING_KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in [
        _k(
            "degrading",
            "node",
            "A GPU's speed (SM clock, throughput) falls by pct_per_day % a simulated day; with link >= 0 the "
            "InfiniBand port of that index loses bandwidth instead, and its symbol errors climb as a "
            "retransmitting cable's do.",
            gpu=0,
            link=-1,
            pct_per_day=5.0,
            start_day=0.0,
        ),
        _k("ecc_creep", "node", "A GPU's correctable ECC errors rise by per_day a simulated day.",
           gpu=0, per_day=250, start_day=0.0),
        _k("fan_wear", "bmc", "A fan (1-based) turns pct_per_day % slower each simulated day at equal load.",
           fan=1, pct_per_day=4.0, start_day=0.0),
    ]
}
FAULT_KINDS.update(DEVELOPING_KINDS)


@dataclass(frozen=True)
class Fault:
    node: str
    kind: str
    params: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "kind": self.kind, "params": dict(self.params)}


def _coerce(kind: FaultKind, key: str, value: Any) -> Any:
    default = kind.params[key]
    wanted = {bool: "true or false", int: "an integer", float: "a number"}.get(type(default), "a string")
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise FaultError(f"fault {kind.name}: parameter {key}={value!r} must be {wanted}") from None


def make_fault(
    node: str, kind: str, params: dict[str, Any] | None = None, known_nodes: set[str] | None = None
) -> Fault:
    """Validate and complete a fault with its defaults; raises FaultError with a one-line reason."""
    spec = FAULT_KINDS.get(kind)
    if spec is None:
        raise FaultError(f"unknown fault kind {kind!r} (known: {', '.join(sorted(FAULT_KINDS))})")
    if known_nodes is not None and node not in known_nodes:
        raise FaultError(f"unknown node {node!r} in the lab")
    if params is not None and not isinstance(params, dict):
        raise FaultError(f"fault {kind}: params must be a mapping of name to value")
    given = dict(params or {})
    unknown = sorted(set(given) - set(spec.params))
    if unknown:
        allowed = ", ".join(spec.params) or "none"
        raise FaultError(f"fault {kind}: unknown parameter(s) {', '.join(unknown)} (allowed: {allowed})")
    full = {key: _coerce(spec, key, given[key]) if key in given else default for key, default in spec.params.items()}
    return Fault(node=node, kind=kind, params=full)


def parse_param_args(pairs: list[str]) -> dict[str, str]:
    """`--param k=v` strings to a dict; values are typed later against the kind."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FaultError(f"--param {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def load_fault_file(path: Path, known_nodes: set[str] | None = None) -> list[Fault]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = path.read_text()
    except OSError as exc:
        raise FaultError(f"{path}: cannot read fault file ({exc.strerror})") from None
    try:
        doc = YAML(typ="safe").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise FaultError(f"{path}{where}: not valid YAML") from None
    if doc is None:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("faults", []), list):
        raise FaultError(f"{path}: expected a mapping with a 'faults' list")
    faults = []
    for i, item in enumerate(doc.get("faults") or []):
        if not isinstance(item, dict) or "node" not in item or "kind" not in item:
            raise FaultError(f"{path}: faults[{i}]: expected {{node: ..., kind: ..., params: {{...}}}}")
        params = item.get("params") or {}
        if not isinstance(params, dict):
            raise FaultError(f"{path}: faults[{i}]: params must be a mapping")
        extra = sorted(set(item) - {"node", "kind", "params"})
        if extra:
            raise FaultError(f"{path}: faults[{i}]: unknown key(s) {', '.join(map(str, extra))}")
        try:
            faults.append(make_fault(str(item["node"]), str(item["kind"]), params, known_nodes))
        except FaultError as exc:
            raise FaultError(f"{path}: faults[{i}]: {exc}") from None
    return faults
