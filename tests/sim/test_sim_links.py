"""Every link the lab serves resolves: a crawl from the service root GETs every `@odata.id` (and the
other URI-valued properties a client follows) and expects 200 from each, with jobs, tasks, an SCP
export and inserted media present so that their links are crawled too."""

from __future__ import annotations

from collections import deque
from typing import Any

import httpx
import pytest

from clusterctl.sim.fleet import SimulatedFleet
from clusterctl.sim.inventory import LAB_OS_IMAGE

pytestmark = pytest.mark.anyio

V1 = "/redfish/v1"
SYS = f"{V1}/Systems/System.Embedded.1"
MGR = f"{V1}/Managers/iDRAC.Embedded.1"
FOLLOWED = ("@odata.id", "Uri", "DataSourceUri", "TaskMonitor", "Members@odata.nextLink")
LIMIT = 2000  # the lab serves a few hundred URIs per BMC; a runaway crawl fails instead of hanging


def links(body: Any) -> list[str]:
    found: list[str] = []
    if isinstance(body, dict):
        for key, value in body.items():
            if key in FOLLOWED and isinstance(value, str) and value.startswith("/redfish"):
                found.append(value.split("#", 1)[0])
            else:
                found += links(value)
    elif isinstance(body, list):
        for item in body:
            found += links(item)
    return found


async def crawl(client: httpx.AsyncClient) -> dict[str, int]:
    seen: dict[str, int] = {}
    queue = deque([f"{V1}/"])
    while queue:
        uri = queue.popleft()
        if uri in seen:
            continue
        assert len(seen) < LIMIT, "the crawl does not end"
        response = await client.get(uri)
        seen[uri] = response.status_code
        if response.status_code == 200 and response.headers.get("content-type", "").startswith("application/json"):
            queue.extend(u for u in links(response.json()) if u not in seen)
    return seen


async def test_every_link_from_the_service_root_resolves(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    update = await bmc.post(f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
                            json={"ImageURI": "http://repo.lab/fw/BIOS_2.3.1.EXE", "TransferProtocol": "HTTP"})
    assert update.status_code == 202
    export = await bmc.post(f"{MGR}/Actions/Oem/EID_674_Manager.ExportSystemConfiguration",
                            json={"ExportFormat": "JSON", "ShareParameters": {"Target": ["BIOS"]}})
    assert export.status_code == 202
    media = await bmc.post(f"{SYS}/VirtualMedia/1/Actions/VirtualMedia.InsertMedia",
                           json={"Image": LAB_OS_IMAGE})
    assert media.status_code == 204
    fleet.clock.advance(30)
    seen = await crawl(bmc)
    # A task monitor answers 202 while its task runs (DSP0266 13.2); everything else 200.
    broken = {u: c for u, c in seen.items() if c != 200 and not (c == 202 and "/TaskMonitors/" in u)}
    assert broken == {}
    assert len(seen) > 150  # the crawl reached the parts, Dell services and sensors, not only the root
    for expected in (f"{MGR}/Oem/Dell/DellJobService", f"{MGR}/Oem/Dell/DellLCService", f"{SYS}/Bios/BiosRegistry",
                     f"{SYS}/Oem/Dell/DellGPUSensors/Video.Slot.1-1", f"{MGR}/Oem/Dell/Jobs",
                     f"{V1}/AccountService/Accounts/16", f"{SYS}/Storage/BOSS.SL.14-1/Volumes"):
        assert expected in seen, expected
