"""The telemetry metric names the monitor writes and the dashboard reads: one list, so they cannot drift."""

from __future__ import annotations

POWER_WATTS = "power_watts"
POWER_LIMIT_WATTS = "power_limit_watts"
INLET_CELSIUS = "inlet_celsius"
EXHAUST_CELSIUS = "exhaust_celsius"
FAN_RPM = "fan_rpm"  # label: fan
PSU_INPUT_WATTS = "psu_input_watts"  # label: psu
PSU_OK = "psu_ok"  # label: psu; 1 when the PSU reports Health OK
GPU_TEMPERATURE_CELSIUS = "gpu_temperature_celsius"  # label: gpu (0-based index)
BMC_UP = "bmc_up"  # 1 when the sweep got an answer from the node's BMC, 0 when it did not

CHARTED = (POWER_WATTS, INLET_CELSIUS, EXHAUST_CELSIUS, GPU_TEMPERATURE_CELSIUS, FAN_RPM, PSU_INPUT_WATTS)
