"""The clock-event policy: every NVML reason the agent names has one, and validate and burn-in grade by it."""

from __future__ import annotations

import pytest

from clusterctl.burnin.verdict import judge
from clusterctl.sim.fake_nvml import REASON_BITS, reason_mask
from clusterctl.validate import clock_events
from clusterctl.validate.agent import CLOCK_EVENT_BITS
from clusterctl.validate.gpu import _clock_event_status


def test_every_reason_the_agent_reports_has_one_policy() -> None:
    assert set(clock_events.POLICY) == {name for _, name in CLOCK_EVENT_BITS}
    assert clock_events.reasons(0x60) == ["sw_thermal", "hw_thermal"]


def test_the_fake_pynvml_names_the_same_bits_as_the_agent() -> None:
    assert sorted(REASON_BITS.values()) == [bit for bit, _ in CLOCK_EVENT_BITS]
    assert clock_events.reasons(reason_mask(["HwThermalSlowdown", "SwThermalSlowdown"])) == ["sw_thermal", "hw_thermal"]


def _burnin(mask: int) -> str:
    records = [{"clusterctl": "burnin/v1", "node": "n1", "rank": 0, "event": "start"}]
    records += [{"clusterctl": "burnin/v1", "node": "n1", "rank": 0, "event": "step", "step": i,
                 "loss": 6.0 - i, "local_tokens_per_s": 1000.0, "gpu_throttle_reasons": mask} for i in range(4)]
    records.append({"clusterctl": "burnin/v1", "node": "n1", "rank": 0, "event": "end"})
    return judge(records, ["n1"])[0].status


@pytest.mark.parametrize(("bit", "name"), CLOCK_EVENT_BITS)
def test_validate_and_burnin_read_the_same_table(bit: int, name: str) -> None:
    policy = clock_events.POLICY[name]
    at_idle = _clock_event_status([{"throttle": {"reasons": [name]}}], policy.check) if policy.check else "pass"
    assert at_idle == {"info": "pass"}.get(policy.idle, policy.idle)
    assert _burnin(bit) == ("fail" if policy.load == "fail" else "pass")
