"""One Redfish sweep of the fleet (power, inlet/exhaust temperatures, fans, PSUs, GPU temperatures) into telemetry.

A sweep is one `run_fleet` call: every BMC has its own deadline, so a dead BMC costs one slot
for `per_bmc_timeout` seconds and is recorded as `bmc_up 0`, never as a stopped sweep.
`watch` repeats sweeps until told to stop; its waits are `Event.wait`, so a stop (Ctrl-C in the
CLI, shutdown in the dashboard) takes effect at once rather than after the interval.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clusterctl import eventloop, log
from clusterctl.monitor import names
from clusterctl.monitor.compact import CompactionPolicy, compact
from clusterctl.state.records import Sample

if TYPE_CHECKING:
    from clusterctl.redfish import BMCTarget
    from clusterctl.redfish.resources.telemetry import Telemetry
    from clusterctl.state.retention import EventRetention
    from clusterctl.state.store import Store

_log = log.get("monitor")
_GPU_SENSOR = re.compile(r"(?i)\bgpu\s*#?\s*(\d+)")


@dataclass(frozen=True)
class SweepResult:
    nodes: int
    answered: int
    samples: int
    seconds: float
    errors: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return {"nodes": self.nodes, "answered": self.answered, "samples": self.samples,
                "seconds": round(self.seconds, 3), "errors": self.errors}


def samples_from(node: str, readings: Sequence[Telemetry], ts: float) -> list[Sample]:
    """Flatten a node's chassis readings into samples; a reading the BMC did not give is left out."""
    out: list[Sample] = [Sample(node, names.BMC_UP, 1.0, ts)]

    def add(metric: str, value: float | None, **labels: str) -> None:
        if value is not None:
            out.append(Sample(node, metric, float(value), ts, labels or None))

    for t in readings:
        add(names.POWER_WATTS, t.power_watts)
        add(names.POWER_LIMIT_WATTS, t.power_limit_watts)
        add(names.INLET_CELSIUS, t.inlet_c)
        add(names.EXHAUST_CELSIUS, t.exhaust_c)
        for fan in t.fans:
            add(names.FAN_RPM, fan.rpm, fan=fan.name)
        for psu in t.psus:
            add(names.PSU_INPUT_WATTS, psu.input_watts, psu=psu.name)
            if psu.health is not None:
                add(names.PSU_OK, 1.0 if psu.health == "OK" else 0.0, psu=psu.name)
        for temp in t.temperatures:
            # The BMC's own GPU numbering (as printed on its sensor names) is kept as the label.
            found = _GPU_SENSOR.search(temp.name)
            if found:
                add(names.GPU_TEMPERATURE_CELSIUS, temp.celsius, gpu=found.group(1))
    return out


async def read_fleet(targets: Sequence[BMCTarget], *, parallel: int = 256, per_bmc_timeout: float = 30.0,
                     attempts: int = 2) -> tuple[list[Sample], SweepResult]:
    from clusterctl.redfish import RetryPolicy, run_fleet
    from clusterctl.redfish.resources.telemetry import node_telemetry

    started = time.monotonic()
    ts = time.time()
    # Short retries: a sweep that waits minutes on one BMC is late for every other one.
    retry = RetryPolicy(attempts=attempts, max_total=per_bmc_timeout / 2)
    results = await run_fleet(targets, node_telemetry, max_bmcs=parallel, per_bmc_timeout=per_bmc_timeout, retry=retry)
    samples: list[Sample] = []
    errors: dict[str, str] = {}
    for result in results:
        if result.ok:
            samples.extend(samples_from(result.target, result.value or [], ts))
        else:
            errors[result.target] = result.error or "unknown error"
            samples.append(Sample(result.target, names.BMC_UP, 0.0, ts))
    summary = SweepResult(nodes=len(results), answered=len(results) - len(errors), samples=len(samples),
                          seconds=time.monotonic() - started, errors=errors)
    return samples, summary


def sweep(store: Store, targets: Sequence[BMCTarget], *, parallel: int = 256,
          per_bmc_timeout: float = 30.0) -> SweepResult:
    """Read every BMC once and append what they said to the telemetry table in one transaction."""
    samples, summary = eventloop.run(read_fleet(targets, parallel=parallel, per_bmc_timeout=per_bmc_timeout))
    store.record_telemetry(samples)
    return summary


def watch(
    store: Store,
    targets: Sequence[BMCTarget],
    *,
    interval: float,
    stop: threading.Event,
    max_sweeps: int | None = None,
    parallel: int = 256,
    per_bmc_timeout: float = 30.0,
    policy: CompactionPolicy | None = None,
    on_sweep: Callable[[SweepResult], None] | None = None,
    events: EventRetention | None = None,
) -> int:
    """Sweep every `interval` seconds until `stop` is set (or `max_sweeps` ran); returns sweeps done.

    Compaction runs after each sweep: it is cheap when there is nothing old to fold. Event
    retention (clusterctl.state.retention) follows, at most once per `events.every_s`.
    """
    from clusterctl.state.retention import EventRetention, compact_events

    policy = policy or CompactionPolicy()
    events = events or EventRetention()
    done = 0
    events_due = 0.0
    while not stop.is_set() and (max_sweeps is None or done < max_sweeps):
        began = time.monotonic()
        try:
            summary = sweep(store, targets, parallel=parallel, per_bmc_timeout=min(per_bmc_timeout, interval))
            compact(store, policy)
            if time.monotonic() >= events_due:
                compact_events(store, events)
                events_due = time.monotonic() + events.every_s
        except Exception as exc:  # noqa: BLE001 - a store hiccup skips one sweep, it does not end monitoring
            _log.warning("monitor sweep failed: %s", exc)
        else:
            if on_sweep is not None:
                on_sweep(summary)
        done += 1
        if max_sweeps is None or done < max_sweeps:
            stop.wait(max(0.0, interval - (time.monotonic() - began)))
    return done
