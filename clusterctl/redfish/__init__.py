"""Redfish for fleets: an async client per BMC, resources per family, Dell OEM apart.

Public surface: `BMCTarget`, `RedfishClient`, `Limits`, `RetryPolicy`, `run_fleet` (results: `clusterctl.fanout`).
"""

from clusterctl.redfish.client import RedfishClient
from clusterctl.redfish.fleet import run_fleet
from clusterctl.redfish.limits import Limits
from clusterctl.redfish.retry import RetryPolicy
from clusterctl.redfish.target import BMCTarget

__all__ = ["BMCTarget", "Limits", "RedfishClient", "RetryPolicy", "run_fleet"]
