"""The hardware model of one XE9680-class server, with the node-side view of its faults.

Healthy values are fixed at creation; fault effects are applied when a view is
read, so adding or clearing a fault changes every view at once. Two views are the
interface a later step serves over SSH to the check program (both plain JSON-able):

- `NodeHardware.nvml()` -> one dict per *present* GPU, shaped like what pynvml gives:
  index, uuid, serial, name, pci_bus_id, temperature_c, power_w, power_limit_w,
  clocks {sm_mhz, sm_max_mhz}, clocks_event_reasons [names], perf_factor,
  ecc {volatile|aggregate: {corrected, uncorrected}},
  remapped_rows {correctable, uncorrectable, pending, failure},
  pcie {gen, gen_max, width, width_max, replay}, nvlink [{link, active}], xid_events [{code}]
  (XIDs last while their fault is set, like a kernel log since boot), fabric {state, status}
  (NVML's NVSwitch fabric registration: completed unless Fabric Manager failed).
- `NodeHardware.ib_ports()` -> one dict per HCA port, shaped like /sys/class/infiniband:
  device (mlx5_N), port, state ("4: ACTIVE"), phys_state ("5: LinkUp"), rate
  ("400 Gb/sec (4X NDR)"), link_layer, counters {symbol_error, link_downed, port_rcv_errors}.

`services()` and `kernel_log_readers()` say what systemctl and the kernel-log readers answer the
SSH user. The BMC side (Redfish) reads PSUs, fans, temperatures and power from here too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from clusterctl.sim.clock import SimClock
from clusterctl.sim.faults import Fault

GPU_COUNT = 8
PSU_COUNT = 6
FAN_COUNT = 16
IB_PORTS = 8
NVLINKS = 18
PSU_CAPACITY_W = 2800
GPU_TDP_W = 700
GPU_IDLE_W = 70
POWER_LIMIT_W = 11_000  # chassis power cap; an XE9680 with 8 H100 SXM peaks near 10.2 kW
INLET_C = 22.0
INLET_WARN_C = 42.0  # iDRAC default inlet thresholds: warning 42 C, critical 47 C
INLET_CRIT_C = 47.0
FAN_RPM = 9600
SM_MAX_MHZ = 1980
DAY_S = 86_400.0
MAX_LOSS = 0.9  # a developing fault never takes a part below a tenth of its speed: it would have died first
SYMBOL_ERRORS_PER_PCT = 40  # a retransmitting cable's symbol errors, per % of bandwidth it has lost
ROW_REMAP_EVERY = 500  # correctable ECC errors per row the GPU remaps (lab model, not NVIDIA's figure)

RATES = {400: "400 Gb/sec (4X NDR)", 200: "200 Gb/sec (4X HDR)", 100: "100 Gb/sec (4X EDR)"}


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


@dataclass(slots=True)
class NodeHardware:
    name: str
    index: int
    load: float = 0.0  # 0..1, set by the node side (burn-in) later
    powered: bool = True
    faults: list[Fault] = field(default_factory=list)
    clock: SimClock | None = None  # the lab's; developing faults (degrading, ecc_creep, fan_wear) read it

    # --- identity ---------------------------------------------------------------------------
    @property
    def service_tag(self) -> str:
        return _hex(f"tag-{self.name}", 7).upper()

    def gpu_serial(self, i: int) -> str:
        return "1654" + str(int(_hex(f"{self.name}-gpu{i}", 8), 16))[:9]

    def gpu_uuid(self, i: int) -> str:
        h = _hex(f"{self.name}-gpu-uuid{i}", 32)
        return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    # --- faults -----------------------------------------------------------------------------
    def faults_of(self, kind: str) -> list[dict[str, Any]]:
        return [f.params for f in self.faults if f.kind == kind]

    def has_fault(self, kind: str) -> bool:
        return any(f.kind == kind for f in self.faults)

    def _on(self, kind: str, key: str, value: int) -> dict[str, Any] | None:
        for params in self.faults_of(kind):
            if params.get(key) == value:
                return params
        return None

    # --- faults that develop over simulated time ----------------------------------------------
    def days(self) -> float:
        """Simulated days since the lab started (0 without a clock: a fault that develops has not yet)."""
        return self.clock.now() / DAY_S if self.clock is not None else 0.0

    def _elapsed(self, params: dict[str, Any]) -> float:
        return max(0.0, self.days() - float(params["start_day"]))

    def _loss(self, kind: str, key: str, value: int) -> float:
        """The share of speed a `degrading` or `fan_wear` fault has taken from this part by now."""
        lost = sum(self._elapsed(p) * float(p["pct_per_day"]) / 100 for p in self.faults_of(kind)
                   if p.get(key) == value and (kind != "degrading" or key == "link" or int(p["link"]) < 0))
        return min(MAX_LOSS, lost)

    def gpu_loss(self, i: int) -> float:
        return self._loss("degrading", "gpu", i)

    def link_loss(self, port: int) -> float:
        return self._loss("degrading", "link", port)

    def corrected_ecc(self, i: int) -> int:
        return sum(int(self._elapsed(p) * int(p["per_day"])) for p in self.faults_of("ecc_creep") if p["gpu"] == i)

    def gpu_present(self, i: int) -> bool:
        return self._on("gpu_missing", "gpu", i) is None

    # --- BMC-visible hardware ---------------------------------------------------------------
    def psus(self) -> list[dict[str, Any]]:
        failed = {p["psu"] for p in self.faults_of("psu_failed")}
        healthy = [i for i in range(1, PSU_COUNT + 1) if i not in failed]
        share = self.power_watts() / max(len(healthy), 1)
        return [
            {
                "index": i,
                "healthy": i not in failed,
                "output_w": 0.0 if i in failed else round(share, 1),
                "input_v": 0 if i in failed else 230,
                "capacity_w": PSU_CAPACITY_W,
            }
            for i in range(1, PSU_COUNT + 1)
        ]

    def fans(self) -> list[dict[str, Any]]:
        failed = {p["fan"] for p in self.faults_of("fan_failed")}
        rpm = int(FAN_RPM * (0.55 + 0.45 * self.load)) if self.powered else 0
        return [
            {"index": i, "healthy": i not in failed,
             "rpm": 0 if i in failed else round(rpm * (1 - self._loss("fan_wear", "fan", i)))}
            for i in range(1, FAN_COUNT + 1)
        ]

    def inlet_c(self) -> float:
        hot = self.faults_of("inlet_temp_high")
        return float(hot[-1]["celsius"]) if hot else INLET_C

    def exhaust_c(self) -> float:
        return round(self.inlet_c() + (18.0 * self.load + 8.0 if self.powered else 0.0), 1)

    def power_watts(self) -> float:
        if not self.powered:
            return 18.0  # iDRAC and standby rails
        present = sum(1 for i in range(GPU_COUNT) if self.gpu_present(i))
        gpu = present * (GPU_IDLE_W + (GPU_TDP_W - GPU_IDLE_W) * self.load)
        watts = 1400 + 1200 * self.load + gpu
        over = self.faults_of("power_over_cap")
        if over:
            watts = max(watts, POWER_LIMIT_W + float(over[-1]["excess_w"]))
        return round(watts, 1)

    def gpu_temp_c(self, i: int) -> float:
        hot = self._on("thermal_throttle", "gpu", i)
        if hot:
            return float(hot["celsius"])
        return round(self.inlet_c() + 10 + 45 * self.load, 1) if self.powered else self.inlet_c()

    # --- node-side views (served over SSH later) --------------------------------------------
    def nvml(self) -> list[dict[str, Any]]:
        return [self._gpu_view(i) for i in range(GPU_COUNT) if self.gpu_present(i)]

    def _gpu_view(self, i: int) -> dict[str, Any]:
        ecc_unc = sum(p["count"] for p in self.faults_of("ecc_uncorrectable") if p["gpu"] == i)
        throttle = self._on("thermal_throttle", "gpu", i)
        slow = self._on("gpu_slow", "gpu", i)
        pcie = self._on("pcie_downtrained", "gpu", i)
        down_links = {p["link"] for p in self.faults_of("nvlink_down") if p["gpu"] == i}
        factor = (float(slow["factor"]) if slow else 1.0) * (1 - self.gpu_loss(i))
        corrected = self.corrected_ecc(i)
        if throttle:
            factor = min(factor, 0.6)
        reasons = ["HwThermalSlowdown", "SwThermalSlowdown"] if throttle else []
        return {
            "index": i,
            "uuid": self.gpu_uuid(i),
            "serial": self.gpu_serial(i),
            "name": "NVIDIA H100 80GB HBM3",
            "pci_bus_id": f"00000000:{0x18 + 0x10 * i:02X}:00.0",
            "temperature_c": self.gpu_temp_c(i),
            "power_w": round(GPU_IDLE_W + (GPU_TDP_W - GPU_IDLE_W) * self.load, 1),
            "power_limit_w": GPU_TDP_W,
            "clocks": {"sm_mhz": round(SM_MAX_MHZ * factor), "sm_max_mhz": SM_MAX_MHZ},
            "clocks_event_reasons": reasons,
            "perf_factor": factor,
            "ecc": {
                "volatile": {"corrected": corrected, "uncorrected": ecc_unc},
                "aggregate": {"corrected": corrected, "uncorrected": ecc_unc},
            },
            "remapped_rows": {
                "correctable": corrected // ROW_REMAP_EVERY,
                "uncorrectable": 1 if ecc_unc else 0,
                "pending": self._on("row_remap_pending", "gpu", i) is not None,
                "failure": False,
            },
            "pcie": {
                "gen": pcie["gen"] if pcie else 5,
                "gen_max": 5,
                "width": pcie["width"] if pcie else 16,
                "width_max": 16,
                "replay": 0,
            },
            "nvlink": [{"link": n, "active": n not in down_links} for n in range(NVLINKS)],
            "xid_events": [{"code": p["code"]} for p in self.faults_of("xid") if p["gpu"] == i],
            "fabric": {"state": "in_progress" if self.has_fault("fabric_manager_failed") else "completed",
                       "status": 0, "clique_id": 1},
        }

    def services(self) -> dict[str, str]:
        """`systemctl is-active` of the units the validation agent asks about."""
        return {"nvidia-fabricmanager": "failed" if self.has_fault("fabric_manager_failed") else "active"}

    def kernel_log_readers(self) -> dict[str, bool]:
        """Which kernel-log readers the SSH user may use: journalctl -k (group systemd-journal, which the
        os stage grants), sudo -n journalctl -k, dmesg."""
        refused = self.faults_of("kernel_log_refused")
        if not refused:
            return {"journalctl": True, "sudo": False, "dmesg": True}
        return {"journalctl": False, "sudo": bool(refused[-1]["sudo"]), "dmesg": False}

    def ib_ports(self) -> list[dict[str, Any]]:
        ports = []
        for n in range(IB_PORTS):
            down = self._on("ib_port_down", "port", n)
            degraded = self._on("ib_degraded", "port", n)
            rate = int(degraded["rate_gbps"]) if degraded else 400
            ports.append(
                {
                    "device": f"mlx5_{n}",
                    "port": 1,
                    "link_layer": "InfiniBand",
                    "state": "1: DOWN" if down else "4: ACTIVE",
                    "phys_state": "3: Disabled" if down else "5: LinkUp",
                    "rate": RATES.get(rate, f"{rate} Gb/sec") if not down else "10 Gb/sec (4X SDR)",
                    "counters": {
                        "symbol_error": (int(degraded["symbol_errors"]) if degraded else 0)
                        + int(self.link_loss(n) * 100 * SYMBOL_ERRORS_PER_PCT),
                        "link_downed": 1 if down else 0,
                        "port_rcv_errors": 0,
                    },
                }
            )
        return ports
