"""The lab answers with the keys a real iDRAC9 sends: for every recorded-shape fixture under
tests/fixtures/redfish/idrac9 that names a URI, the lab's answer for that URI (or, for an Id that
only exists on the recorded machine, for the lab's resource of the same kind) has the same
top-level keys. The fixtures follow public samples of iDRAC9 payloads (sushy-oem-idrac's test
samples, Dell's Redfish API guide) and are parsed by the client's own tests, so the client and the
lab meet the same shapes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from clusterctl.sim.fleet import SimulatedFleet

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent.parent / "fixtures" / "redfish" / "idrac9"
V1 = "/redfish/v1"
# Keys whose presence depends on data, not shape (a nextLink only when a page is full, a task's
# EndTime only once it ended).
DATA_DEPENDENT = {"Members@odata.nextLink", "EndTime"}


def recorded() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*.json") if "@odata.id" in json.loads(p.read_text()))


async def lab_uri(bmc: httpx.AsyncClient, fixture: dict, fleet: SimulatedFleet) -> str:
    """The lab's URI for the fixture's resource: the same URI, or the lab's one of the same kind."""
    uri = fixture["@odata.id"]
    if (await bmc.get(uri)).status_code == 200:
        return uri
    kind = uri.rsplit("/", 1)[0]
    if kind.endswith(("/Jobs", "/TaskService/Tasks")):
        jobs = (await bmc.get(f"{V1}/Managers/iDRAC.Embedded.1/Jobs")).json()["Members"]
        return f"{kind}/{jobs[0]['@odata.id'].rsplit('/', 1)[-1]}"
    if kind.endswith("/FirmwareInventory"):
        name = uri.rsplit("/", 1)[-1]
        items = [m["@odata.id"] for m in (await bmc.get(kind)).json()["Members"]]
        if "__NIC." in name:  # NICs carry their FQDD; the lab names its ports nic.N
            return next(i for i in items if "__nic." in i)
        return next(i for i in items if i.rsplit("/", 1)[-1].split("-")[1] == name.split("-")[1])
    if kind.endswith("/Fans"):  # XE9680 fans are dual-rotor (1A, 1B); the lab has one rotor per fan
        return f"{kind}/Fan.Embedded.1"
    pytest.fail(f"the lab has no resource of the kind of {uri}")


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.stem)
async def test_lab_answers_with_the_recorded_keys(path: Path, bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    started = await bmc.post(f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
                             json={"ImageURI": "http://repo.lab/fw/BIOS_2.3.1.EXE", "TransferProtocol": "HTTP"})
    assert started.status_code == 202
    fleet.clock.advance(30)
    fixture = json.loads(path.read_text())
    uri = await lab_uri(bmc, fixture, fleet)
    answer = await bmc.get(uri)
    assert answer.status_code == 200, uri
    assert set(answer.json()) - DATA_DEPENDENT == set(fixture) - DATA_DEPENDENT
