"""Conformance against a third-party Redfish implementation: sushy-tools' sushy-emulator (fake
driver) over HTTPS with a certificate from a test CA, verified by the client with that CA."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from clusterctl.cli import main
from clusterctl.errors import BMCRequestFailed, BMCUnreachable
from clusterctl.redfish import BMCTarget, RedfishClient, RetryPolicy
from clusterctl.redfish.resources.bios import read_bios
from clusterctl.redfish.resources.chassis import list_chassis
from clusterctl.redfish.resources.managers import cd_slot, list_managers, virtual_media
from clusterctl.redfish.resources.service_root import ServiceRoot
from clusterctl.redfish.resources.systems import get_system, list_systems, power, set_boot_override
from clusterctl.redfish.resources.telemetry import telemetry
from clusterctl.redfish.resources.update import firmware_inventory

FAST = RetryPolicy(attempts=2, initial_wait=0.05, max_wait=1, jitter=0, max_total=5)


@pytest.fixture
def emu(sushy_emulator: str, tls: dict[str, str]) -> BMCTarget:
    return BMCTarget(name="emu", base_url=sushy_emulator, username="admin", password="unused-pw", verify=tls["ca"])


def with_client(target: BMCTarget, fn: Any) -> Any:
    async def go() -> Any:
        async with RedfishClient(target, retry=FAST) as client:
            return await fn(client)

    return asyncio.run(go())


def test_service_root_systems_and_summary(emu: BMCTarget) -> None:
    async def read(client: RedfishClient) -> tuple[ServiceRoot, list, dict, str]:
        systems = await list_systems(client)
        return (
            ServiceRoot.model_validate(client.root),
            systems,
            (await get_system(client)).summary(),
            client.auth_mode,
        )

    root, systems, summary, auth = with_client(emu, read)
    assert root.systems is not None and root.systems.odata_id == "/redfish/v1/Systems"
    assert auth == "basic"  # the emulator offers no SessionService: the fallback path
    assert len(systems) == 1
    assert summary["manufacturer"] == "Sushy Emulator"
    assert summary["power_state"] in ("On", "Off")
    assert "Pxe" in systems[0].boot.allowed_targets
    assert {"On", "ForceOff"} <= set(systems[0].reset_types())


def test_boot_override_to_pxe_once_then_back_to_disk(emu: BMCTarget) -> None:
    async def flip(client: RedfishClient) -> tuple[str | None, str | None]:
        system = await get_system(client)
        await set_boot_override(client, system, "pxe", enabled="Once")
        after = await get_system(client, system.odata_id)
        await set_boot_override(client, after, "disk", enabled="Continuous")
        final = await get_system(client, system.odata_id)
        return after.boot.target, final.boot.target

    # (the emulator always reports BootSourceOverrideEnabled "Continuous", so only targets are compared)
    assert with_client(emu, flip) == ("Pxe", "Hdd")


def test_boot_target_the_bmc_does_not_offer_is_refused_before_sending(emu: BMCTarget) -> None:
    async def bad(client: RedfishClient) -> None:
        await set_boot_override(client, await get_system(client), "usb")

    with pytest.raises(BMCRequestFailed, match="boot target Usb not offered"):
        with_client(emu, bad)


def test_power_on_is_applied_and_a_second_on_is_a_no_op(emu: BMCTarget) -> None:
    async def cycle(client: RedfishClient) -> tuple[str, str | None]:
        system = await get_system(client)
        if system.power_state == "On":
            await power(client, system, "off")
            await _wait_power(client, system.odata_id, "Off")
        sent = await power(client, await get_system(client, system.odata_id), "on")
        state = await _wait_power(client, system.odata_id, "On")
        again = await power(client, await get_system(client, system.odata_id), "on")
        return sent + "/" + again, state

    assert with_client(emu, cycle) == ("On/none", "On")


async def _wait_power(client: RedfishClient, uri: str | None, wanted: str) -> str | None:
    """The fake driver applies power changes 1-11 s later, like real hardware does."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = (await get_system(client, uri)).power_state
        if state == wanted:
            return state
        await asyncio.sleep(0.5)
    return (await get_system(client, uri)).power_state


def test_chassis_telemetry_falls_back_to_legacy_thermal(emu: BMCTarget) -> None:
    async def read(client: RedfishClient) -> list:
        return [await telemetry(client, c) for c in await list_chassis(client)]

    (t,) = with_client(emu, read)
    assert t.source == {"power": "none", "thermal": "legacy"}
    assert [f.rpm for f in t.fans] == [2100, 2050]
    assert t.inlet_c == 25  # "Chassis Intake Temp", PhysicalContext Intake
    assert t.psus == [] and t.power_watts is None


def test_managers_and_virtual_media_slots(emu: BMCTarget) -> None:
    async def read(client: RedfishClient) -> tuple:
        managers = await list_managers(client)
        slots = await virtual_media(client, managers[0])
        return managers, slots

    managers, slots = with_client(emu, read)
    assert managers[0].manager_type == "BMC"
    assert managers[0].firmware_version
    assert cd_slot(slots) is not None and "CD" in cd_slot(slots).media_types  # type: ignore[union-attr]


def test_what_the_emulator_does_not_serve_fails_readably(emu: BMCTarget) -> None:
    async def bios(client: RedfishClient) -> None:
        await read_bios(client, await get_system(client))

    async def firmware(client: RedfishClient) -> None:
        await firmware_inventory(client)

    with pytest.raises(BMCRequestFailed, match="has no Bios resource"):
        with_client(emu, bios)
    with pytest.raises(BMCRequestFailed, match="FirmwareInventory -> 404"):
        with_client(emu, firmware)


def test_emulator_certificate_is_refused_without_the_site_ca(sushy_emulator: str) -> None:
    target = BMCTarget(name="emu", base_url=sushy_emulator, username="a", password="unused-pw")
    with pytest.raises(BMCUnreachable, match="TLS certificate not trusted"):
        with_client(target, lambda c: c.get("/redfish/v1/Systems"))


# -- the CLI, end to end against the emulator ------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EMU_PW", "unused-pw")
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> int:
        return main.run(list(args))

    return run


def test_cli_show_json(cli: Any, sushy_emulator: str, tls: dict, capsys: pytest.CaptureFixture) -> None:
    code = cli("bmc", "show", "--target", sushy_emulator, "--password-env", "EMU_PW", "--ca", tls["ca"], "-o", "json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out[0]["ok"] and out[0]["value"]["manufacturer"] == "Sushy Emulator"


def test_cli_telemetry_table(cli: Any, sushy_emulator: str, tls: dict, capsys: pytest.CaptureFixture) -> None:
    code = cli("bmc", "telemetry", "--target", sushy_emulator, "--password-env", "EMU_PW", "--ca", tls["ca"])
    out = capsys.readouterr().out
    assert code == 0
    assert "25.0" in out and "2050" in out


def test_cli_failed_bmc_is_a_row_and_exit_1(
    cli: Any, sushy_emulator: str, tls: dict, capsys: pytest.CaptureFixture
) -> None:
    code = cli(
        "bmc",
        "firmware",
        "--target",
        sushy_emulator,
        "--password-env",
        "EMU_PW",
        "--ca",
        tls["ca"],
        "-o",
        "json",
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out[0]["ok"] is False and "404" in out[0]["error"]


def test_cli_bad_input_is_one_line_exit_2(cli: Any, capsys: pytest.CaptureFixture) -> None:
    assert cli("bmc", "show") == 2
    assert capsys.readouterr().err.strip() == (
        "error: no BMC given: pass an inventory FILE (with --limit) or --target https://HOST"
    )
    assert cli("bmc", "show", "--target", "https://127.0.0.1:1", "--password-env", "NOPE_NOT_SET") == 2
    assert "NOPE_NOT_SET" in capsys.readouterr().err
    assert cli("bmc", "power", "sideways", "--target", "https://127.0.0.1:1", "--password-env", "EMU_PW") == 2
    assert (
        cli(
            "bmc",
            "show",
            "--target",
            "https://127.0.0.1:1",
            "--password-env",
            "EMU_PW",
            "--ca",
            "/nonexistent.pem",
        )
        == 2
    )
    assert "--ca /nonexistent.pem: no such file" in capsys.readouterr().err
