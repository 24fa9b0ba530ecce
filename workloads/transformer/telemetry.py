"""GPU telemetry for each rank's report, through pynvml when the node has an NVIDIA driver.

Import failures and NVML errors give an empty dict: a burn-in must not die because a
monitoring library is missing; the verdict then simply has no GPU telemetry for that rank.
"""

from __future__ import annotations

from typing import Any

_handle: Any = None
_nvml: Any = None


def init(local_rank: int) -> None:
    global _handle, _nvml
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        _handle = pynvml.nvmlDeviceGetHandleByIndex(local_rank)
        _nvml = pynvml
    except Exception:  # noqa: BLE001 - any NVML problem means "no telemetry", by design
        _handle = None


def sample() -> dict[str, Any]:
    if _handle is None:
        return {}
    n = _nvml
    try:
        return {
            "gpu_temp_c": n.nvmlDeviceGetTemperature(_handle, n.NVML_TEMPERATURE_GPU),
            "gpu_power_w": n.nvmlDeviceGetPowerUsage(_handle) / 1000.0,
            "gpu_sm_clock_mhz": n.nvmlDeviceGetClockInfo(_handle, n.NVML_CLOCK_SM),
            "gpu_throttle_reasons": int(n.nvmlDeviceGetCurrentClocksEventReasons(_handle)),
        }
    except Exception:  # noqa: BLE001
        return {}
