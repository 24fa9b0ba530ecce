"""The monitor: bounded sweeps that record unreachable BMCs as data, and idempotent telemetry compaction."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from clusterctl.monitor import CompactionPolicy, compact, names, samples_from, watch
from clusterctl.redfish import BMCTarget
from clusterctl.redfish.resources.telemetry import FanReading, PsuReading, Telemetry, TemperatureReading
from clusterctl.state.records import Sample
from clusterctl.state.store import Store

DAY = 86_400.0


def test_samples_from_a_reading() -> None:
    reading = Telemetry(
        power_watts=5100.0, inlet_c=22.0, exhaust_c=None,
        fans=[FanReading(name="Fan 1", rpm=5200.0)],
        psus=[PsuReading(name="PSU 1", health="OK", input_watts=850.0), PsuReading(name="PSU 2", health="Critical")],
        temperatures=[TemperatureReading(name="GPU 3 Temp", celsius=61.0),
                      TemperatureReading(name="CPU1 Temp", celsius=50)],
    )
    got = {(s.metric, tuple(sorted((s.labels or {}).items()))): s.value for s in samples_from("n1", [reading], 10.0)}
    assert got == {
        (names.BMC_UP, ()): 1.0,
        (names.POWER_WATTS, ()): 5100.0,
        (names.INLET_CELSIUS, ()): 22.0,
        (names.FAN_RPM, (("fan", "Fan 1"),)): 5200.0,
        (names.PSU_INPUT_WATTS, (("psu", "PSU 1"),)): 850.0,
        (names.PSU_OK, (("psu", "PSU 1"),)): 1.0,
        (names.PSU_OK, (("psu", "PSU 2"),)): 0.0,
        (names.GPU_TEMPERATURE_CELSIUS, (("gpu", "3"),)): 61.0,
    }


def test_an_unreachable_bmc_is_a_sample_and_stop_is_prompt(store: Store) -> None:
    dead = BMCTarget(name="gone01", base_url="https://127.0.0.1:9", username="root", password="pw-not-used")
    began = time.monotonic()
    assert watch(store, [dead], interval=5, stop=threading.Event(), max_sweeps=1, per_bmc_timeout=4) == 1
    assert time.monotonic() - began < 10
    assert [s.value for s in store.telemetry("gone01", names.BMC_UP)] == [0.0]

    stop = threading.Event()
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(watch(store, [dead], interval=60, stop=stop,
                                                               per_bmc_timeout=4)))
    worker.start()
    time.sleep(0.5)
    stop.set()
    worker.join(timeout=10)
    assert not worker.is_alive() and done == [1]  # the 60 s wait ended as soon as it was told to


def test_compaction_keeps_a_day_raw_then_five_minute_averages(store_url: str) -> None:
    now = 10 * DAY
    policy = CompactionPolicy()
    old = now - 2 * DAY - (now - 2 * DAY) % 300  # a bucket boundary two days back
    with Store.open(store_url) as store:
        store.record_telemetry(
            [Sample("n1", names.POWER_WATTS, 100.0 + i, old + 60 * i) for i in range(10)]  # 2 buckets of 5
            + [Sample("n1", names.FAN_RPM, v, old + 30, {"fan": f}) for f, v in (("A", 1000.0), ("B", 2000.0))]
            + [Sample("n1", names.FAN_RPM, v, old + 90, {"fan": f}) for f, v in (("A", 3000.0), ("B", 4000.0))]
            + [Sample("n1", names.POWER_WATTS, 555.0, now - 60), Sample("n1", names.POWER_WATTS, 556.0, now - 30)]
            + [Sample("n2", names.POWER_WATTS, 1.0, now - 100 * DAY)]
        )
        first = compact(store, policy, now=now)
        power = [(s.ts, s.value) for s in store.telemetry("n1", names.POWER_WATTS)]
        assert power == [(old, 102.0), (old + 300, 107.0), (now - 60, 555.0), (now - 30, 556.0)]
        fans = {s.labels["fan"]: (s.ts, s.value) for s in store.telemetry("n1", names.FAN_RPM)}
        assert fans == {"A": (old, 2000.0), "B": (old, 3000.0)}  # series kept apart by their labels
        assert store.telemetry("n2", names.POWER_WATTS) == []  # past the 90 days
        assert first.as_dict() == {"deleted": 15, "written": 4}
        assert compact(store, policy, now=now).as_dict() == {"deleted": 0, "written": 0}  # idempotent


def test_monitor_cli_refuses_a_missing_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clusterctl.cli import main as main_cli

    assert main_cli.run(["monitor", str(tmp_path / "nope.yaml"), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "no such inventory file" in err
    assert main_cli.run(["dashboard", "--collect"]) == 2
    assert "--collect needs the inventory FILE" in capsys.readouterr().err
