"""`clusterctl monitor`: periodic Redfish sweeps into the store's telemetry table, and their compaction.

Public surface: `sweep`, `samples_from`, `compact`, `watch`, and the metric names in `metrics`.
"""

from clusterctl.monitor.compact import CompactionPolicy, compact
from clusterctl.monitor.sweep import samples_from, sweep, watch

__all__ = ["CompactionPolicy", "compact", "samples_from", "sweep", "watch"]
