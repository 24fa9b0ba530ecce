"""Whatever a client sends, the simulated BMC answers with a Redfish status, never a crash (500)."""

from __future__ import annotations

import asyncio

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clusterctl.sim.app import LabApp
from clusterctl.sim.clock import SimClock
from clusterctl.sim.fleet import SimulatedFleet

SYS = "/redfish/v1/Systems/System.Embedded.1"
MGR = "/redfish/v1/Managers/iDRAC.Embedded.1"
WRITES = [
    ("POST", f"{SYS}/Actions/ComputerSystem.Reset"),
    ("PATCH", SYS),
    ("PATCH", f"{SYS}/Bios/Settings"),
    ("POST", f"{MGR}/Jobs"),
    ("POST", "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate"),
    ("POST", f"{MGR}/VirtualMedia/CD/Actions/VirtualMedia.InsertMedia"),
    ("POST", "/redfish/v1/SessionService/Sessions"),
    ("PATCH", "/redfish/v1/SessionService"),
]
KEYS = [
    "ResetType",
    "Boot",
    "Attributes",
    "@Redfish.SettingsApplyTime",
    "TargetSettingsURI",
    "ImageURI",
    "@Redfish.OperationApplyTime",
    "Image",
    "UserName",
    "Password",
    "SessionTimeout",
    "AssetTag",
]
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
bodies = st.dictionaries(st.sampled_from(KEYS), values, max_size=4) | values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(write=st.sampled_from(WRITES), body=bodies)
@example(
    write=("PATCH", f"{SYS}/Bios/Settings"),
    body={"@Redfish.SettingsApplyTime": "x", "Attributes": {"LogicalProc": "Disabled"}},
)
@example(write=("PATCH", f"{SYS}/Bios/Settings"), body={"Attributes": {"AcPwrRcvryDelay": True}})
@example(write=("PATCH", SYS), body={"Boot": {"BootSourceOverrideTarget": {"a": 1}}})
def test_random_bodies_never_crash_the_bmc(write: tuple[str, str], body: object) -> None:
    fleet = SimulatedFleet(1, "pw", SimClock(1.0))

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=LabApp(fleet))
        async with httpx.AsyncClient(
            transport=transport, base_url="https://127.1.0.1:8443", auth=("root", "pw")
        ) as client:
            return await client.request(write[0], write[1], json=body)

    response = asyncio.run(send())
    assert response.status_code < 500 or response.status_code == 503, (write, body, response.text)
    if (
        write[1].endswith("Bios/Settings")
        and isinstance(body, dict)
        and body.get("Attributes") == {"AcPwrRcvryDelay": True}
    ):
        assert response.status_code == 400  # a bool is not an integer attribute
