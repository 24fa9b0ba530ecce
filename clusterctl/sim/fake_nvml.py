"""A fake `pynvml` that answers from a JSON fixture, for nodes without NVIDIA GPUs (tests, the lab).

An agent run as a program loads this file in place of pynvml when CLUSTERCTL_AGENT_PYNVML names
it (see clusterctl/validate/agent.py); nvmlInit then reads the fixture CLUSTERCTL_FAKE_NVML names.
The lab, which runs the agent in process, gives each node's fixture to `load` instead. Only the
calls the validation agent makes exist; they return what the real ones return (milliwatts, ints,
tuples) so the agent has one code path.

Fixture format (JSON):

    {
      "error": "driver_not_loaded",          # optional: nvmlInit fails as on a node without a driver
      "driver_version": "550.54.15",
      "cuda_driver_version": 12040,          # as NVML reports it: 1000 * major + 10 * minor
      "missing_calls": ["nvmlDeviceGetGpuFabricInfoV"],  # optional: NVML_ERROR_FUNCTION_NOT_FOUND, as on
                                             # a driver older than the call (pynvml raises it the same way)
      "gpus": [
        {
          "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-...", "pci_bus_id": "00000000:18:00.0",
          "persistence_mode": 1, "ecc_mode": [1, 1],                 # current, pending
          "ecc": {"volatile": {"corrected": 0, "uncorrected": 0},
                  "aggregate": {"corrected": 0, "uncorrected": 0}},
          "retired_pages": {"sbe": 0, "dbe": 0, "pending": 0},       # pre-Ampere; absent: not supported
          "remapped_rows": {"correctable": 0, "uncorrectable": 0, "pending": 0, "failure": 0},
          "pcie": {"gen_cur": 5, "gen_max": 5, "width_cur": 16, "width_max": 16, "replay": 0},
          "nvlink": [{"active": 1, "replay": 0, "recovery": 0, "crc_flit": 0, "crc_data": 0}, ...],
          "clocks": {"sm": 1980, "sm_max": 1980, "mem": 2619, "mem_max": 2619},
          "throttle_reasons": 1,                 # NVML bit mask, e.g. 0x8 HW slowdown, 0x40 HW thermal
          "temperature_c": 35, "temperature_slowdown_c": 87, "temperature_shutdown_c": 92,
          "power_mw": 72000, "power_limit_mw": 700000,
          "fabric": {"state": 3, "status": 0, "clique_id": 1}  # NVSwitch fabric (Hopper+): state 3 is
        }                                        # COMPLETED, status an nvmlReturn_t; names ("in_progress") too
      ]
    }
A key left out makes its call raise NVMLError(NOT_SUPPORTED), as on GPUs without the feature.

The embedded lab's view of a GPU (`clusterctl.sim.node.NodeHardware.nvml()`) is accepted as a
`gpus` entry too: power_w/power_limit_w in watts, pcie {gen, gen_max, width, width_max},
clocks {sm_mhz, sm_max_mhz}, and clocks_event_reasons as NVML reason names (HwThermalSlowdown...).
"""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Iterable
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS = 0
NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR = 1
NVML_NVLINK_MAX_LINKS = 18
NVML_NVLINK_ERROR_DL_REPLAY = 0
NVML_NVLINK_ERROR_DL_RECOVERY = 1
NVML_NVLINK_ERROR_DL_CRC_FLIT = 2
NVML_NVLINK_ERROR_DL_CRC_DATA = 3
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = 0
NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1
NVML_GPU_FABRIC_UUID_LEN = 16
NVML_GPU_FABRIC_STATE_NOT_SUPPORTED = 0
NVML_GPU_FABRIC_STATE_NOT_STARTED = 1
NVML_GPU_FABRIC_STATE_IN_PROGRESS = 2
NVML_GPU_FABRIC_STATE_COMPLETED = 3
FABRIC_STATE_NAMES = {"not_supported": 0, "not_started": 1, "in_progress": 2, "completed": 3}
nvmlGpuFabricInfo_v2 = 0x02000024  # noqa: N816 - nvml.h's spelling

_ERRORS = {
    "uninitialized": NVML_ERROR_UNINITIALIZED,
    "not_supported": NVML_ERROR_NOT_SUPPORTED,
    "driver_not_loaded": NVML_ERROR_DRIVER_NOT_LOADED,
    "library_not_found": NVML_ERROR_LIBRARY_NOT_FOUND,
    "gpu_is_lost": NVML_ERROR_GPU_IS_LOST,
}
_STRINGS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _STRINGS.get(self.value, f"NVML error {self.value}")


class _PciInfo:
    def __init__(self, bus_id: str) -> None:
        self.busId = bus_id  # noqa: N815 - pynvml's spelling


class c_nvmlGpuFabricInfo_t(ctypes.Structure):  # noqa: N801 - pynvml's names and layouts
    _fields_ = [("clusterUuid", ctypes.c_uint8 * NVML_GPU_FABRIC_UUID_LEN), ("status", ctypes.c_uint),
                ("cliqueId", ctypes.c_uint32), ("state", ctypes.c_uint)]


class c_nvmlGpuFabricInfoV_t(ctypes.Structure):  # noqa: N801
    _fields_ = [("version", ctypes.c_uint), ("clusterUuid", ctypes.c_uint8 * NVML_GPU_FABRIC_UUID_LEN),
                ("status", ctypes.c_uint), ("cliqueId", ctypes.c_uint32), ("state", ctypes.c_uint),
                ("healthMask", ctypes.c_uint32)]

    def __init__(self) -> None:
        super().__init__(version=nvmlGpuFabricInfo_v2)


_state: dict[str, Any] | None = None

# nvmlClocksEventReason* names -> bits, as nvml.h defines them (the real pynvml exports them too), for
# fixtures and the lab, which list reasons by name. The agent's CLOCK_EVENT_BITS name the same bits:
# https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksEventReasons.html
REASON_BITS = {
    "GpuIdle": 0x1, "ApplicationsClocksSetting": 0x2, "SwPowerCap": 0x4, "HwSlowdown": 0x8, "SyncBoost": 0x10,
    "SwThermalSlowdown": 0x20, "HwThermalSlowdown": 0x40, "HwPowerBrakeSlowdown": 0x80, "DisplayClockSetting": 0x100,
}


def reason_mask(names: Iterable[str]) -> int:
    return sum(REASON_BITS.get(name, 0) for name in names)


def _normalise(gpu: dict[str, Any]) -> dict[str, Any]:
    """The lab's GPU view -> this module's fixture keys; canonical fixtures pass through unchanged."""
    g = dict(gpu)
    for watts, milliwatts in (("power_w", "power_mw"), ("power_limit_w", "power_limit_mw")):
        if g.get(watts) is not None and milliwatts not in g:
            g[milliwatts] = int(round(float(g[watts]) * 1000))
    pcie = g.get("pcie")
    if isinstance(pcie, dict) and "gen" in pcie:
        pairs = {"gen_cur": "gen", "gen_max": "gen_max", "width_cur": "width", "width_max": "width_max",
                 "replay": "replay"}
        g["pcie"] = {k: pcie[v] for k, v in pairs.items() if pcie.get(v) is not None}
    clocks = g.get("clocks")
    if isinstance(clocks, dict) and "sm_mhz" in clocks:
        pairs = {"sm": "sm_mhz", "sm_max": "sm_max_mhz", "mem": "mem_mhz", "mem_max": "mem_max_mhz"}
        g["clocks"] = {k: clocks[v] for k, v in pairs.items() if clocks.get(v) is not None}
    fabric = g.get("fabric")
    if isinstance(fabric, dict) and isinstance(fabric.get("state"), str):
        g["fabric"] = {**fabric, "state": FABRIC_STATE_NAMES[fabric["state"]]}
    if "clocks_event_reasons" in g and "throttle_reasons" not in g:
        g["throttle_reasons"] = reason_mask(g["clocks_event_reasons"])
    return g


def _fixture() -> dict[str, Any]:
    if _state is None:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    return _state


def _gpu(handle: int) -> dict[str, Any]:
    gpus = _fixture().get("gpus", [])
    if not isinstance(handle, int) or not 0 <= handle < len(gpus):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    gpu = gpus[handle]
    if gpu.get("lost"):
        raise NVMLError(NVML_ERROR_GPU_IS_LOST)
    return gpu


def _field(handle: int, *keys: str) -> Any:
    value: Any = _gpu(handle)
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        value = value[key]
    return value


def load(fixture: dict[str, Any]) -> None:
    """Answer from `fixture` until nvmlShutdown, as nvmlInit does with the file's fixture.

    The state is this module's: one fixture at a time, which holds for the lab because it runs
    the agent's collection synchronously on its event loop, one node at a time.
    """
    global _state
    if fixture.get("error"):
        raise NVMLError(_ERRORS.get(fixture["error"], NVML_ERROR_DRIVER_NOT_LOADED))
    _state = {**fixture, "gpus": [_normalise(g) for g in fixture.get("gpus", [])]}


def nvmlInit() -> None:  # noqa: N802 - pynvml's API names
    path = os.environ.get("CLUSTERCTL_FAKE_NVML")
    if not path:
        raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
    with open(path, encoding="utf-8") as f:
        load(json.load(f))


def nvmlShutdown() -> None:  # noqa: N802
    global _state
    _state = None


def nvmlSystemGetDriverVersion() -> str:  # noqa: N802
    return str(_fixture()["driver_version"])


def nvmlSystemGetCudaDriverVersion() -> int:  # noqa: N802
    return int(_fixture()["cuda_driver_version"])


def nvmlDeviceGetCount() -> int:  # noqa: N802
    return len(_fixture().get("gpus", []))


def nvmlDeviceGetHandleByIndex(index: int) -> int:  # noqa: N802
    _gpu(index)
    return index


def nvmlDeviceGetName(handle: int) -> str:  # noqa: N802
    return str(_field(handle, "name"))


def nvmlDeviceGetUUID(handle: int) -> str:  # noqa: N802
    return str(_field(handle, "uuid"))


def nvmlDeviceGetPciInfo(handle: int) -> _PciInfo:  # noqa: N802
    return _PciInfo(str(_field(handle, "pci_bus_id")))


def nvmlDeviceGetPersistenceMode(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "persistence_mode"))


def nvmlDeviceGetEccMode(handle: int) -> tuple[int, int]:  # noqa: N802
    current, pending = _field(handle, "ecc_mode")
    return int(current), int(pending)


def nvmlDeviceGetTotalEccErrors(handle: int, error_type: int, counter_type: int) -> int:  # noqa: N802
    counter = "volatile" if counter_type == NVML_VOLATILE_ECC else "aggregate"
    kind = "uncorrected" if error_type == NVML_MEMORY_ERROR_TYPE_UNCORRECTED else "corrected"
    return int(_field(handle, "ecc", counter, kind))


def nvmlDeviceGetRetiredPages(handle: int, cause: int) -> list[int]:  # noqa: N802
    key = "dbe" if cause == NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR else "sbe"
    return [0x1000 * i for i in range(int(_field(handle, "retired_pages", key)))]


def nvmlDeviceGetRetiredPagesPendingStatus(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "retired_pages", "pending"))


def nvmlDeviceGetRemappedRows(handle: int) -> tuple[int, int, int, int]:  # noqa: N802
    rows = _field(handle, "remapped_rows")
    return (int(rows.get("correctable", 0)), int(rows.get("uncorrectable", 0)),
            int(rows.get("pending", 0)), int(rows.get("failure", 0)))


def nvmlDeviceGetCurrPcieLinkGeneration(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "pcie", "gen_cur"))


def nvmlDeviceGetMaxPcieLinkGeneration(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "pcie", "gen_max"))


def nvmlDeviceGetCurrPcieLinkWidth(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "pcie", "width_cur"))


def nvmlDeviceGetPcieReplayCounter(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "pcie", "replay"))


def nvmlDeviceGetMaxPcieLinkWidth(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "pcie", "width_max"))


def _link(handle: int, link: int) -> dict[str, Any]:
    links = _field(handle, "nvlink")
    if not 0 <= link < len(links):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return links[link]


def nvmlDeviceGetNvLinkState(handle: int, link: int) -> int:  # noqa: N802
    return int(_link(handle, link).get("active", 0))


_NVLINK_COUNTERS = {
    NVML_NVLINK_ERROR_DL_REPLAY: "replay",
    NVML_NVLINK_ERROR_DL_RECOVERY: "recovery",
    NVML_NVLINK_ERROR_DL_CRC_FLIT: "crc_flit",
    NVML_NVLINK_ERROR_DL_CRC_DATA: "crc_data",
}


def nvmlDeviceGetNvLinkErrorCounter(handle: int, link: int, counter: int) -> int:  # noqa: N802
    return int(_link(handle, link).get(_NVLINK_COUNTERS[counter], 0))


def _clock(handle: int, clock: int, suffix: str) -> int:
    name = {NVML_CLOCK_SM: "sm", NVML_CLOCK_GRAPHICS: "sm", NVML_CLOCK_MEM: "mem"}[clock]
    return int(_field(handle, "clocks", name + suffix))


def nvmlDeviceGetClockInfo(handle: int, clock: int) -> int:  # noqa: N802
    return _clock(handle, clock, "")


def nvmlDeviceGetMaxClockInfo(handle: int, clock: int) -> int:  # noqa: N802
    return _clock(handle, clock, "_max")


def nvmlDeviceGetCurrentClocksThrottleReasons(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "throttle_reasons"))


def nvmlDeviceGetTemperature(handle: int, sensor: int) -> int:  # noqa: N802
    return int(_field(handle, "temperature_c"))


def nvmlDeviceGetTemperatureThreshold(handle: int, threshold: int) -> int:  # noqa: N802
    key = "temperature_slowdown_c" if threshold == NVML_TEMPERATURE_THRESHOLD_SLOWDOWN else "temperature_shutdown_c"
    return int(_field(handle, key))


def nvmlDeviceGetPowerUsage(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "power_mw"))


def nvmlDeviceGetEnforcedPowerLimit(handle: int) -> int:  # noqa: N802
    return int(_field(handle, "power_limit_mw"))


def nvmlErrorString(result: int) -> str:  # noqa: N802
    return _STRINGS.get(result, f"NVML error {result}")


def _driver_has(call: str) -> None:
    if call in _fixture().get("missing_calls", ()):
        raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)


def _fill_fabric(call: str, handle: int, ref: Any) -> int:
    """pynvml's calling convention: the caller passes ctypes.byref(its struct) and NVML fills it in."""
    _driver_has(call)
    fabric = _field(handle, "fabric")
    info = getattr(ref, "_obj", ref)
    info.state = int(fabric.get("state", NVML_GPU_FABRIC_STATE_COMPLETED))
    info.status = int(fabric.get("status", NVML_SUCCESS))
    info.cliqueId = int(fabric.get("clique_id", 0))
    return NVML_SUCCESS


def nvmlDeviceGetGpuFabricInfoV(handle: int, info: Any) -> int:  # noqa: N802
    return _fill_fabric("nvmlDeviceGetGpuFabricInfoV", handle, info)


def nvmlDeviceGetGpuFabricInfo(handle: int, info: Any) -> int:  # noqa: N802
    return _fill_fabric("nvmlDeviceGetGpuFabricInfo", handle, info)
