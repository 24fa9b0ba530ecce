"""UpdateService actions (SimpleUpdate, multipart push), VirtualMedia insert/eject, and the
inventory -> BMC target seam used by `clusterctl bmc FILE --limit`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.fakebmc import FakeBMC, Resp

from clusterctl.errors import BMCRequestFailed
from clusterctl.redfish import BMCTarget, RedfishClient, RetryPolicy
from clusterctl.redfish.resources.managers import (
    cd_slot,
    eject_media,
    insert_media,
    list_managers,
    virtual_media,
)
from clusterctl.redfish.resources.tasks import start_and_wait
from clusterctl.redfish.resources.update import multipart_push, simple_update
from clusterctl.redfish.target import targets_from_inventory

FAST = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=1, jitter=0, max_total=5)
US = "/redfish/v1/UpdateService"


def with_client(bmc: FakeBMC, fn: Any) -> Any:
    async def go() -> Any:
        target = BMCTarget(name="bmc1", base_url="http://bmc1.test", username="admin", password="s3cret-pw")
        async with RedfishClient(target, transport=httpx.ASGITransport(app=bmc), retry=FAST) as client:
            return await fn(client)

    return asyncio.run(go())


@pytest.fixture
def updatable() -> FakeBMC:
    bmc = FakeBMC()
    bmc.resources["/redfish/v1"]["UpdateService"] = {"@odata.id": US}
    bmc.add(
        US,
        {
            "@odata.id": US,
            "MultipartHttpPushUri": f"{US}/upload",
            "Actions": {
                "#UpdateService.SimpleUpdate": {
                    "target": f"{US}/Actions/UpdateService.SimpleUpdate",
                    "TransferProtocol@Redfish.AllowableValues": ["HTTP", "HTTPS"],
                    "@Redfish.OperationApplyTimeSupport": {"SupportedValues": ["Immediate", "OnReset"]},
                }
            },
        },
    )
    return bmc


def test_simple_update_sends_a_valid_request_and_its_task_is_followed(updatable: FakeBMC) -> None:
    updatable.on(
        "POST",
        f"{US}/Actions/UpdateService.SimpleUpdate",
        lambda req: Resp(202, None, {"Location": "/redfish/v1/TaskService/Tasks/7"}),
    )
    updatable.add("/redfish/v1/TaskService/Tasks/7", {"Id": "7", "TaskState": "Completed", "TaskStatus": "OK"})

    async def go(client: RedfishClient) -> dict:
        resp = await simple_update(
            client,
            "https://repo.example/BIOS_2.3.5.exe",  # no protocol given: the URI's scheme says it
            apply_time="OnReset",
            targets=["/redfish/v1/Systems/1"],
        )
        return await start_and_wait(client, resp, deadline_s=5, poll=0.01)

    assert with_client(updatable, go)["TaskState"] == "Completed"
    (post,) = updatable.requests("POST", f"{US}/Actions/UpdateService.SimpleUpdate")
    assert post.json == {
        "ImageURI": "https://repo.example/BIOS_2.3.5.exe",
        "TransferProtocol": "HTTPS",
        "Targets": ["/redfish/v1/Systems/1"],
        "@Redfish.OperationApplyTime": "OnReset",
    }


def test_simple_update_refuses_what_the_bmc_does_not_offer(updatable: FakeBMC) -> None:
    with pytest.raises(BMCRequestFailed, match="TransferProtocol TFTP not offered"):
        with_client(updatable, lambda c: simple_update(c, "tftp://x/img", protocol="TFTP"))
    with pytest.raises(BMCRequestFailed, match="apply time AtMaintenanceWindowStart not supported"):
        with_client(updatable, lambda c: simple_update(c, "https://x/img", apply_time="AtMaintenanceWindowStart"))
    assert updatable.requests("POST") == [r for r in updatable.requests("POST") if "Sessions" in r.path]


def test_multipart_push_uploads_parameters_and_file(updatable: FakeBMC, tmp_path: Path) -> None:
    image = tmp_path / "iDRAC-7.10.30.00.bin"
    image.write_bytes(b"\x7fFIRMWARE" * 100)
    updatable.on("POST", f"{US}/upload", lambda req: Resp(202, None, {"Location": "/redfish/v1/TaskService/Tasks/8"}))

    resp = with_client(updatable, lambda c: multipart_push(c, image, apply_time="OnReset"))
    assert resp.status_code == 202
    (post,) = updatable.requests("POST", f"{US}/upload")
    assert post.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="UpdateParameters"' in post.body and b'{"@Redfish.OperationApplyTime": "OnReset"}' in post.body
    assert b'name="UpdateFile"; filename="iDRAC-7.10.30.00.bin"' in post.body
    assert b"\x7fFIRMWARE" * 100 in post.body


def test_virtual_media_insert_and_eject_use_the_actions() -> None:
    bmc = FakeBMC()
    vm = "/redfish/v1/Managers/1/VirtualMedia"
    bmc.resources["/redfish/v1"]["Managers"] = {"@odata.id": "/redfish/v1/Managers"}
    bmc.add("/redfish/v1/Managers", {"Members": [{"@odata.id": "/redfish/v1/Managers/1"}]})
    bmc.add("/redfish/v1/Managers/1", {"Id": "1", "VirtualMedia": {"@odata.id": vm}})
    bmc.add(vm, {"Members": [{"@odata.id": f"{vm}/RemovableDisk"}, {"@odata.id": f"{vm}/CD"}]})
    bmc.add(f"{vm}/RemovableDisk", {"Id": "RemovableDisk", "MediaTypes": ["USBStick"]})
    bmc.add(
        f"{vm}/CD",
        {
            "@odata.id": f"{vm}/CD",
            "Id": "CD",
            "MediaTypes": ["CD", "DVD"],
            "Actions": {
                "#VirtualMedia.InsertMedia": {"target": f"{vm}/CD/Actions/VirtualMedia.InsertMedia"},
                "#VirtualMedia.EjectMedia": {"target": f"{vm}/CD/Actions/VirtualMedia.EjectMedia"},
            },
        },
    )
    for action in ("InsertMedia", "EjectMedia"):
        bmc.on("POST", f"{vm}/CD/Actions/VirtualMedia.{action}", lambda req: Resp(204))

    async def go(client: RedfishClient) -> str | None:
        slot = cd_slot(await virtual_media(client, (await list_managers(client))[0]))
        assert slot is not None
        await insert_media(client, slot, "http://10.0.0.1/ubuntu-24.04.iso")
        await eject_media(client, slot)
        return slot.id

    assert with_client(bmc, go) == "CD"
    inserted = bmc.requests("POST", f"{vm}/CD/Actions/VirtualMedia.InsertMedia")[0].json
    assert inserted == {"Image": "http://10.0.0.1/ubuntu-24.04.iso", "Inserted": True, "WriteProtected": True}
    assert len(bmc.requests("POST", f"{vm}/CD/Actions/VirtualMedia.EjectMedia")) == 1


def test_inventory_nodes_become_https_targets_with_their_tls_policy(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLUSTERCTL_IDRAC_PASSWORD", "idrac-pw-from-env")
    targets = targets_from_inventory(repo / "inventories" / "site.yaml", "login[01-02]")
    assert [t.name for t in targets] == ["login01", "login02"]
    assert all(t.base_url.startswith("https://") and t.base_url.endswith(":443") for t in targets)
    assert all(str(t.verify).endswith("certs/bmc-ca.pem") and t.vendor == "idrac" for t in targets)
    assert targets[0].password == "idrac-pw-from-env"
    assert "idrac-pw-from-env" not in repr(targets[0])


def test_fleet_json_output_never_contains_the_password(
    repo: Path, isolated_home: Path, tls: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    """The lab inventory puts BMCs on 127.1.0.0/16:8443; with no lab running nothing answers there."""
    from clusterctl.cli import main

    lab = isolated_home / ".local" / "state" / "clusterctl" / "lab"
    lab.mkdir(parents=True)
    (lab / "bmc-password").write_text("lab-bmc-pw-42\n")
    (lab / "bmc-password").chmod(0o600)
    (lab / "ca.pem").write_text(Path(tls["ca"]).read_text())
    code = main.run(
        [
            "bmc",
            "show",
            str(repo / "inventories" / "lab.yaml"),
            "--limit",
            "",
            "--attempts",
            "1",
            "--timeout",
            "20",
            "-o",
            "json",
        ]
    )
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert code == 1 and len(rows) == 16 and not any(r["ok"] for r in rows)
    assert all(r["error_type"] == "BMCUnreachable" for r in rows), rows[0]
    assert "lab-bmc-pw-42" not in captured.out + captured.err


def test_more_than_twenty_bmcs_get_a_progress_bar_on_stderr() -> None:
    import io

    from rich.console import Console

    from clusterctl.cli.bmc import BMCOptions
    from clusterctl.cli.context import Settings

    err = io.StringIO()
    s = Settings(err=Console(file=err, force_terminal=True, width=100))
    # discard port on loopback: refused at once, so every BMC fails fast and is still reported
    targets = [
        BMCTarget(name=f"n{i:02d}", base_url="http://127.0.0.1:9", username="u", password="pw-unused")
        for i in range(25)
    ]
    options = BMCOptions(file=None, limit=None, target=None, user="u", password_env="UNUSED", ca=None, insecure=False,
                  vendor="redfish", parallel=8, timeout=10, attempts=1)
    results = options.run(s, lambda c: c.get("/redfish/v1/Systems"), targets)
    assert [r.target for r in results] == [t.name for t in targets]
    assert all(r.error_type == "BMCUnreachable" for r in results)
    assert "25/25" in err.getvalue()


@pytest.mark.parametrize("where", ["Systems/System.Embedded.1", "Managers/iDRAC.Embedded.1"])
def test_boot_once_from_iso_inserts_media_then_sets_the_override(idrac: FakeBMC, where: str) -> None:
    """iDRAC 6.00 and later serve the CD slot under the system; older ones only under the manager,
    where the system's link (present in the fixture) then answers 404."""
    from clusterctl.redfish.resources.managers import boot_once_from_iso
    from clusterctl.redfish.resources.systems import get_system

    vm = f"/redfish/v1/{where}/VirtualMedia"
    idrac.add(vm, {"Members": [{"@odata.id": f"{vm}/CD"}]})
    idrac.add(
        f"{vm}/CD",
        {
            "@odata.id": f"{vm}/CD",
            "Id": "CD",
            "MediaTypes": ["CD", "DVD"],
            "Actions": {"#VirtualMedia.InsertMedia": {"target": f"{vm}/CD/Actions/VirtualMedia.InsertMedia"}},
        },
    )
    idrac.on("POST", f"{vm}/CD/Actions/VirtualMedia.InsertMedia", lambda req: Resp(204))

    async def go(client: RedfishClient) -> None:
        system = await get_system(client)
        await boot_once_from_iso(client, system, (await list_managers(client))[0], "http://10.0.0.1/os.iso")

    with_client(idrac, go)
    boot = idrac.resources["/redfish/v1/Systems/System.Embedded.1"]["Boot"]
    assert (boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"]) == ("Cd", "Once")
    order = [r.method + " " + r.path for r in idrac.log if r.method in ("POST", "PATCH")]
    assert order[-2:] == [f"POST {vm}/CD/Actions/VirtualMedia.InsertMedia",
                          "PATCH /redfish/v1/Systems/System.Embedded.1"]
    if where.startswith("Systems"):  # found under the system: the manager's slots are never read
        assert not idrac.requests("GET", "/redfish/v1/Managers/iDRAC.Embedded.1/VirtualMedia")


def test_list_tasks(idrac: FakeBMC) -> None:
    from clusterctl.redfish.resources.tasks import list_tasks

    idrac.add("/redfish/v1/TaskService", {"Tasks": {"@odata.id": "/redfish/v1/TaskService/Tasks"}})
    idrac.add(
        "/redfish/v1/TaskService/Tasks", {"Members": [{"@odata.id": "/redfish/v1/TaskService/Tasks/JID_878682850779"}]}
    )
    tasks = with_client(idrac, list_tasks)
    assert [(t.id, t.task_state, t.percent_complete) for t in tasks] == [("JID_878682850779", "Running", 20)]
