"""The read model and /metrics on both store backends, from records written through the store API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dashboard_support import REPO, fill  # type: ignore[import-not-found]
from prometheus_client.parser import text_string_to_metric_families

from clusterctl.dashboard.metrics import DOCUMENTED, Exposition, render
from clusterctl.dashboard.views import FRESH_S, UNPLACED, NotFound, ReadModel
from clusterctl.inventory import load_inventory
from clusterctl.monitor import names, samples_from
from clusterctl.redfish.resources.telemetry import FanReading, PsuReading, Telemetry, TemperatureReading
from clusterctl.state.records import Sample
from clusterctl.state.store import Store


@pytest.fixture
def model(store_url: str) -> Iterator[tuple[ReadModel, list[str]]]:
    inventory = load_inventory(REPO / "inventories" / "lab.yaml")
    with Store.open(store_url) as store:
        yield ReadModel(store, inventory), list(inventory.nodes)


def test_fleet_counts_places_and_progress(model: tuple[ReadModel, list[str]]) -> None:
    view, nodes = model
    fleet = fill(view.store, nodes)
    data = view.fleet()
    assert data["counts"] == fleet.counts
    assert data["total"] == len(nodes)
    cells = {n[0]: n for hall in data["halls"] for rack in hall["racks"] for n in rack["nodes"]}
    assert cells[nodes[2]][1:] == ["fail", "os"]
    assert cells[nodes[3]][1:] == ["provisioning", "validate"]
    assert cells[nodes[6]][1] == "quarantined"
    racks = {r["name"]: r for hall in data["halls"] for r in hall["racks"]}
    assert set(racks) == {"lab-r01", "lab-r02"} and racks["lab-r01"]["power_budget_w"] == 96000
    assert data["run"]["id"] == fleet.burnin_run
    assert data["last_event_id"] == view.store.last_event_id()

    view.store.set_stage("stray01", "discover", "done", run_id=None)  # known to the store, not the inventory
    placed = {h["name"]: h for h in view.fleet()["halls"]}
    assert placed[UNPLACED]["racks"][0]["nodes"] == [["stray01", "ready", None]]


def test_node_rack_and_run_views(model: tuple[ReadModel, list[str]]) -> None:
    view, nodes = model
    fleet = fill(view.store, nodes)
    view.store.record_telemetry([
        Sample(nodes[0], names.POWER_WATTS, 5200.0), Sample(nodes[1], names.POWER_WATTS, 4800.0),
        Sample(nodes[0], names.INLET_CELSIUS, 24.5),
    ])
    node = view.node(nodes[4])
    assert node["state"] == "fail"
    assert node["checks"][0] == {**node["checks"][0], "check": "gpu.count", "status": "fail",
                                 "hint": "Reseat GPU 3 or RMA the baseboard"}
    firmware = {f["component"]: f for f in node["firmware"]}
    assert firmware["BIOS"]["ok"] is True and firmware["iDRAC"]["ok"] is False and firmware["PSU"]["ok"] is None
    assert node["inventory"]["rack"] == "lab-r01" and "password" not in repr(node)
    assert [e["kind"] for e in node["events"]][-1] == "stage.done"

    rack = view.rack("lab-r01")
    assert rack["power_watts"] == 10000.0 and rack["power_reporting"] == 2
    assert rack["nodes"][0]["inlet_celsius"] == 24.5

    run = view.burnin_run(fleet.burnin_run)
    slow = [n for n in run["throughput"]["nodes"] if n["ratio"] < 0.85]
    assert [n["node"] for n in slow] == [fleet.straggler]
    assert run["counts"] == {"fail": 1, "pass": len(nodes) - 1}
    assert len(run["loss"]) == len(nodes) and run["loss"][0]["points"][0][0] == 0
    assert [q["node"] for q in run["quarantined"]] == [nodes[6]]

    with pytest.raises(NotFound):
        view.node("nope")
    with pytest.raises(NotFound):
        view.rack("nope")
    with pytest.raises(NotFound):
        view.burnin_run(999)


def test_events_page_and_follow(model: tuple[ReadModel, list[str]]) -> None:
    view, nodes = model
    fill(view.store, nodes)
    newest = view.events(limit=5)
    assert len(newest["events"]) == 5 and newest["last_id"] == view.store.last_event_id()
    later = view.store.event("operator.note", node=nodes[0])
    follow = view.events(newest["last_id"])
    assert [e["id"] for e in follow["events"]] == [later] and follow["last_id"] == later
    assert view.events(later)["last_id"] == later
    assert {e["kind"] for e in view.events(kind="gpu.xid")["events"]} == {"gpu.xid"}


def _sweep(node: str, ts: float, *, power: float, fans: list[float], failed_psus: int = 0, gpus: int = 8,
           inlet: float = 22.0) -> list[Sample]:
    """The samples `monitor` writes for one BMC answer (clusterctl.monitor.samples_from)."""
    reading = Telemetry(
        power_watts=power, inlet_c=inlet, exhaust_c=inlet + 20,
        fans=[FanReading(name=f"Fan{i}", rpm=rpm) for i, rpm in enumerate(fans, 1)],
        psus=[PsuReading(name=f"PSU{p}", health="Critical" if p <= failed_psus else "OK", input_watts=900.0)
              for p in range(1, 7)],
        temperatures=[TemperatureReading(name=f"GPU {g} Temp", celsius=40.0 + g) for g in range(1, gpus + 1)],
    )
    return samples_from(node, [reading], ts)


def test_metrics_parse_and_carry_the_documented_names(model: tuple[ReadModel, list[str]]) -> None:
    view, nodes = model
    fleet = fill(view.store, nodes)
    now = time.time()
    view.store.record_telemetry([
        *_sweep(nodes[0], now - 120, power=5000.0, fans=[9000.0, 3000.0]),  # older: not the current reading
        *_sweep(nodes[0], now - 60, power=5200.0, fans=[9000.0, 8800.0, 0.0], failed_psus=1, gpus=7, inlet=24.5),
        *_sweep(nodes[1], now - 60, power=4800.0, fans=[9100.0, 9050.0]),
        *_sweep(nodes[2], now - 2 * FRESH_S, power=9999.0, fans=[9000.0]),  # stale: not a current reading
        *_sweep(nodes[3], now - 120, power=4000.0, fans=[9000.0]),
        Sample(nodes[3], names.BMC_UP, 0.0, now - 60),  # then its BMC stopped answering
    ])
    families = {f.name: f for f in text_string_to_metric_families(render(view).decode())}
    # The parser drops `_total` from counter family names; the samples keep it.
    exposed = {s.name for f in families.values() for s in f.samples} | set(families)
    missing = [n for n in DOCUMENTED if n not in exposed and n.removesuffix("_total") not in families]
    assert not missing
    assert set(families) <= {n.removesuffix("_total") for n in DOCUMENTED}  # nothing undocumented

    def samples(name: str) -> list:
        return families[name].samples

    def per_node(name: str) -> dict[str, float]:
        return {s.labels["node"]: s.value for s in samples(name)}

    states = {s.labels["node"]: s.labels["state"] for s in samples("clusterctl_node_state")}
    assert sum(1 for s in states.values() if s == "fail") == fleet.counts["fail"]
    assert {s.labels["rack"] for s in samples("clusterctl_node_state") if s.labels["node"] == nodes[0]} == {"lab-r01"}
    assert {s.labels["state"]: s.value for s in samples("clusterctl_nodes")}["ready"] == fleet.counts["ready"]
    assert [(s.labels["node"], s.labels["check"], s.value) for s in samples("clusterctl_check_failures")
            if s.name.endswith("_total")] == [(nodes[4], "gpu.count", 1.0)]
    # Each node's newest sweep only; a stale one says nothing, a BMC that stopped answering says only that.
    assert per_node("clusterctl_bmc_up") == {nodes[0]: 1.0, nodes[1]: 1.0, nodes[3]: 0.0}
    assert per_node("clusterctl_node_power_watts") == {nodes[0]: 5200.0, nodes[1]: 4800.0}
    assert per_node("clusterctl_node_fan_speed_min_rpm") == {nodes[0]: 0.0, nodes[1]: 9050.0}
    assert per_node("clusterctl_node_psus_unhealthy") == {nodes[0]: 1.0, nodes[1]: 0.0}
    assert per_node("clusterctl_node_gpus_missing") == {nodes[0]: 1.0, nodes[1]: 0.0}
    assert per_node("clusterctl_node_inlet_temperature_celsius") == {nodes[0]: 24.5, nodes[1]: 22.0}
    rack = {s.labels["rack"]: s.value for s in samples("clusterctl_rack_power_watts")}
    assert rack == {"lab-r01": 10000.0}  # newest reading per node, summed
    # One series a node per figure: no per-fan, per-PSU or per-GPU label on any of them.
    assert all(set(s.labels) == {"node"} for name in ("clusterctl_bmc_up", "clusterctl_node_fan_speed_min_rpm",
                                                     "clusterctl_node_psus_unhealthy") for s in samples(name))
    xids = {(s.labels["xid"], s.labels["gpu"]): s.value for s in samples("clusterctl_xid_errors")
            if s.name.endswith("_total")}
    assert xids == {("79", "2"): 2.0, ("48", "5"): 1.0}  # repeats counted, per code


def test_metrics_text_is_rendered_again_when_the_store_changes_or_it_ages(model: tuple[ReadModel, list[str]]) -> None:
    view, nodes = model
    fill(view.store, nodes)
    clock = [1000.0]
    exposition = Exposition(view, ttl_s=10.0, clock=lambda: clock[0])
    first = exposition()
    assert exposition() is first  # the store unchanged and the text young: served again, not rendered
    view.store.record_telemetry(_sweep(nodes[0], time.time(), power=6000.0, fans=[9000.0]))
    swept = exposition()
    assert f'clusterctl_node_power_watts{{node="{nodes[0]}"}} 6000.0'.encode() in swept
    view.store.set_flag(nodes[1], quarantined=True, reason="test", source="test")  # a state change, no telemetry
    flagged = exposition()
    assert f'node="{nodes[1]}",rack="lab-r01",stage="",state="quarantined"'.encode() in flagged
    assert exposition() is flagged
    clock[0] += 10.0
    assert exposition() is not flagged  # aged: a sweep may have gone stale since


def test_the_fleet_view_and_status_show_every_controller_with_its_nodes(
    model: tuple[ReadModel, list[str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from support.cli import run_cli

    from clusterctl.inventory.hostlist import fold
    from clusterctl.state import node_leases

    view, nodes = model
    monkeypatch.setenv("CLUSTERCTL_STATE", view.store.url)
    jobs = ("provision", "maintain", "check")
    started = [node_leases.start(view.store, job, heartbeat_s=3600) for job in jobs]
    try:
        for i, controller in enumerate(started):
            controller.claim(nodes[2 * i:2 * i + 2])
        shown = {c["job"]: c for c in view.fleet()["controllers"]}
        result = run_cli(capsys, "-o", "json", "status")
        listed = {c["job"]: c for c in result.document("status")["controllers"]}
        text = run_cli(capsys, "status").out
    finally:
        for controller in started:
            controller.close()
    assert set(shown) == set(listed) == set(jobs)
    for i, (job, controller) in enumerate(zip(jobs, started, strict=True)):
        held = nodes[2 * i:2 * i + 2]
        assert shown[job]["controller"] == listed[job]["controller"] == controller.name
        assert shown[job]["holding"] == listed[job]["holding"] == 2
        assert shown[job]["run"] == listed[job]["run"] == controller.run_id
        assert shown[job]["nodes"] == listed[job]["nodes"] == fold(held)
        assert any(f" {job} " in line and f"2: {fold(held)}" in line for line in text.splitlines()), text
    assert view.fleet()["controllers"] == []


def test_a_nodes_state_follows_the_latest_result_of_each_check(model: tuple[ReadModel, list[str]]) -> None:
    view, nodes = model
    store = view.store
    a, b, c = nodes[10], nodes[11], nodes[12]
    store.record_check(a, "gpu.count", "fail")
    store.record_check(a, "gpu.count", "pass")  # fixed since: a is not failing
    store.record_check(b, "gpu.count", "pass")
    store.record_check(b, "gpu.count", "warn")  # the latest is a warning
    store.record_check(c, "ib.ports", "fail")
    store.record_check(c, "gpu.count", "pass")  # another check's pass does not clear ib.ports
    facts = view.node_facts()
    assert (facts[a].check_fail, facts[a].check_warn) == (False, False)
    assert (facts[b].check_fail, facts[b].check_warn) == (False, True)
    assert facts[c].check_fail
    assert view.node_facts(only=[a, c]).keys() == {a, c} and view.node_facts(only=[a, c])[c].check_fail
