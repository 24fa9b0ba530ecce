"""A node's power and cooling in few requests: `$expand=.($levels=1)` in the lab (as iDRAC9 offers
it) and `node_telemetry` using what a chassis's expansion carries, with the same readings as the
request-per-resource path and a fallback for BMCs that advertise `$expand` but do not honour it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from support.fakebmc import FakeBMC

from clusterctl.redfish import BMCTarget, RedfishClient
from clusterctl.redfish.resources.telemetry import Telemetry, node_telemetry
from clusterctl.sim.app import LabApp
from clusterctl.sim.clock import SimClock
from clusterctl.sim.faults import Fault
from clusterctl.sim.fleet import SimulatedFleet

PASSWORD = "expand-test-pw"
BMC1 = "https://127.1.0.1:8443"
V1 = "/redfish/v1"
CHASSIS = f"{V1}/Chassis/System.Embedded.1"
EXPAND = "$expand=.($levels=1)"


class Counting:
    """The lab app, counting the requests that reach it (method, path, query)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"], scope.get("query_string", b"").decode()))
        await self.app(scope, receive, send)


def raw_lab(fleet: SimulatedFleet, auth: tuple[str, str] | None = ("root", PASSWORD)) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=LabApp(fleet)), base_url=BMC1, auth=auth)


def test_a_chassis_expands_its_subordinates_but_not_its_links() -> None:
    fleet = SimulatedFleet(1, PASSWORD, SimClock(1.0))

    async def go() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with raw_lab(fleet) as bmc:
            expanded = (await bmc.get(f"{CHASSIS}?{EXPAND}")).json()
            alone = {k: (await bmc.get(f"{CHASSIS}/{k}")).json() for k in ("Power", "Thermal", "EnvironmentMetrics")}
            links_only = (await bmc.get(f"{CHASSIS}?$expand=~")).json()
            root = (await bmc.get(f"{V1}/?{EXPAND}")).json()
        return expanded, alone, links_only, root

    expanded, alone, links_only, root = asyncio.run(go())
    for key, body in alone.items():
        assert expanded[key] == body, key
    assert expanded["PowerSubsystem"]["PowerSupplies"] == {"@odata.id": f"{CHASSIS}/PowerSubsystem/PowerSupplies"}
    assert expanded["Links"]["ManagedBy"] == [{"@odata.id": f"{V1}/Managers/iDRAC.Embedded.1"}]
    assert links_only["Power"] == {"@odata.id": f"{CHASSIS}/Power"}
    assert links_only["Links"]["ManagedBy"][0]["Id"] == "iDRAC.Embedded.1"
    assert root["ProtocolFeaturesSupported"]["ExpandQuery"]["MaxLevels"] == 1
    assert root["Systems"]["Members"][0] == {"@odata.id": f"{V1}/Systems/System.Embedded.1"}


def test_the_public_service_root_expands_nothing_for_an_anonymous_client() -> None:
    fleet = SimulatedFleet(1, PASSWORD, SimClock(1.0))

    async def go() -> dict[str, Any]:
        async with raw_lab(fleet, auth=None) as anon:
            answer = await anon.get(f"{V1}/?$expand=*")
            assert answer.status_code == 200
            return answer.json()

    root = asyncio.run(go())
    assert root["Systems"] == {"@odata.id": f"{V1}/Systems"}  # no way around authentication
    assert root["Links"]["Sessions"] == {"@odata.id": f"{V1}/SessionService/Sessions"}


def _read(fleet: SimulatedFleet, *, expand: bool) -> tuple[Telemetry, list[tuple[str, str, str]]]:
    app = Counting(LabApp(fleet))

    async def go() -> Telemetry:
        target = BMCTarget(name="gpu0001", base_url=BMC1, username="root", password=PASSWORD)
        async with RedfishClient(target, transport=httpx.ASGITransport(app=app)) as bmc:
            if not expand:  # a BMC that offers no $expand: every resource on its own
                bmc.root.pop("ProtocolFeaturesSupported")
            (found,) = await node_telemetry(bmc)
            return found

    return asyncio.run(go()), app.seen


def _readings(t: Telemetry) -> dict[str, Any]:
    return {
        "psus": [(p.name, p.health, p.input_watts, p.capacity_watts) for p in t.psus],
        "fans": [(f.name, f.rpm, f.health) for f in t.fans],
        "temps": sorted((r.name, r.celsius) for r in t.temperatures),
        "summary": (t.inlet_c, t.exhaust_c, t.power_watts, t.power_limit_watts),
    }


def test_node_telemetry_costs_one_request_per_chassis_with_expand_and_reads_the_same() -> None:
    fleet = SimulatedFleet(1, PASSWORD, SimClock(1.0))
    fleet.add_fault(Fault(node="gpu0001", kind="psu_failed", params={"psu": 2}))
    fleet.add_fault(Fault(node="gpu0001", kind="fan_failed", params={"fan": 3}))

    fast, fast_sent = _read(fleet, expand=True)
    slow, slow_sent = _read(fleet, expand=False)

    assert fast_sent == [
        ("GET", f"{V1}/", ""),
        ("POST", f"{V1}/SessionService/Sessions", ""),
        ("GET", f"{V1}/Chassis", ""),
        ("GET", CHASSIS, EXPAND),
        ("DELETE", fast_sent[-1][1], ""),
    ]
    assert len(slow_sent) > 20  # PowerSubsystem, each PSU and its metrics, each fan, ...
    assert _readings(fast) == _readings(slow)
    assert fast.source == {"power": "legacy", "thermal": "legacy"}
    assert slow.source == {"power": "subsystem", "thermal": "subsystem"}
    assert [p.health for p in fast.psus].count("Critical") == 1
    assert [f.health for f in fast.fans].count("Critical") == 1
    assert fast.power_watts and fast.power_limit_watts and fast.inlet_c is not None


def test_a_bmc_that_advertises_expand_but_ignores_it_is_read_resource_by_resource(idrac: FakeBMC) -> None:
    # The recorded iDRAC9 root advertises $expand; the fake answers every query with the plain
    # resource, as some firmware does: the references are followed, the new model preferred.
    async def go() -> list[Telemetry]:
        target = BMCTarget(name="r07u12", base_url="https://idrac.test", username="admin", password="s3cret-pw")
        async with RedfishClient(target, transport=httpx.ASGITransport(app=idrac)) as client:
            assert client.expand_query == EXPAND
            return await node_telemetry(client)

    (t,) = asyncio.run(go())
    assert t.source == {"power": "subsystem", "thermal": "subsystem"}
    assert (t.inlet_c, t.power_watts, t.power_limit_watts) == (24, 5250, 12000)
    assert idrac.requests("GET", f"{CHASSIS}/Power") == []
