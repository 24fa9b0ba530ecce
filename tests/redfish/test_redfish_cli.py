"""`clusterctl bmc ...` end to end against the iDRAC9-shaped fake BMC served on 127.0.0.1 over TLS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.asgi import served
from support.fakebmc import FakeBMC, Resp, fixture, load_idrac9

from clusterctl.cli import main

MGR = "/redfish/v1/Managers/iDRAC.Embedded.1"


@pytest.fixture
def idrac_served(tls: dict[str, str]) -> Iterator[tuple[FakeBMC, str]]:
    bmc = load_idrac9(FakeBMC(user="root", password="calvin-but-longer"))
    bmc.add(f"{MGR}/LogServices", {"Members": [{"@odata.id": f"{MGR}/LogServices/Sel"}]})
    bmc.add(
        f"{MGR}/LogServices/Sel",
        {
            "@odata.id": f"{MGR}/LogServices/Sel",
            "Id": "Sel",
            "Entries": {"@odata.id": f"{MGR}/LogServices/Sel/Entries"},
        },
    )
    bmc.add("/redfish/v1/Systems/System.Embedded.1/LogServices", {"Members": []})
    bmc.add(
        "/redfish/v1/Systems/System.Embedded.1/Bios/Settings",
        {**fixture("idrac9/bios_settings.json"), "Attributes": {"ProcTurboMode": "Disabled"}},
    )
    page2 = fixture("idrac9/firmware_inventory_page2.json")
    pages = iter([fixture("idrac9/firmware_inventory.json"), page2])
    bmc.on("GET", "/redfish/v1/UpdateService/FirmwareInventory", lambda req: Resp(200, next(pages, page2)))
    with served(bmc, certfile=tls["cert"], keyfile=tls["key"]) as server:
        yield bmc, server.url


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, idrac_served: tuple[FakeBMC, str], tls: dict[str, str]) -> Any:
    monkeypatch.setenv("IDRAC_PW", "calvin-but-longer")
    monkeypatch.setenv("COLUMNS", "250")
    url = idrac_served[1]

    def run(*args: str) -> int:
        cmd, *rest = args
        words = cmd.split()
        return main.run(
            [
                "bmc",
                *words,
                "--target",
                url,
                "--user",
                "root",
                "--password-env",
                "IDRAC_PW",
                "--ca",
                tls["ca"],
                "--vendor",
                "idrac",
                *rest,
            ]
        )

    return run


def test_show_table(cli: Any, capsys: pytest.CaptureFixture) -> None:
    assert cli("show") == 0
    out = capsys.readouterr().out
    for text in ("PowerEdge XE9680", "CNFCP0041P00AB", "2.19.1", "7.10.30.00", "2048"):
        assert text in out


def test_firmware_json_pages(cli: Any, capsys: pytest.CaptureFixture) -> None:
    assert cli("firmware", "-o", "json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert [c["version"] for c in row["value"]] == ["7.10.30.00", "2.19.1", "22.39.10.02"]


def test_bios_shows_current_and_pending(cli: Any, capsys: pytest.CaptureFixture) -> None:
    assert cli("bios", "--attr", "ProcTurboMode", "--attr", "LogicalProc", "-o", "json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["value"] == {
        "attributes": {"LogicalProc": "Enabled", "ProcTurboMode": "Enabled"},
        "pending": {"ProcTurboMode": "Disabled"},
    }


def test_telemetry_table_flags_the_dead_psu(cli: Any, capsys: pytest.CaptureFixture) -> None:
    assert cli("telemetry") == 0
    out = capsys.readouterr().out
    assert "5250" in out and "12000" in out and "24.0" in out and "42.0" in out
    assert "1/2" in out  # one of two PSUs OK


def test_logs_table(cli: Any, capsys: pytest.CaptureFixture) -> None:
    assert cli("logs", "--entries", "5") == 0
    out = capsys.readouterr().out
    assert "PSU0003" in out and "Critical" in out and "SEL9901" in out


def test_power_cycle_sends_the_allowed_reset_type(
    cli: Any, idrac_served: tuple[FakeBMC, str], capsys: pytest.CaptureFixture
) -> None:
    bmc, _ = idrac_served
    reset = "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset"
    bmc.on("POST", reset, lambda req: Resp(204))
    assert cli("power cycle", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)[0]["value"] == {"before": "On", "reset_type": "PowerCycle"}
    assert [r.json for r in bmc.requests("POST", reset)] == [{"ResetType": "PowerCycle"}]
    assert bmc.sessions == {}  # logged out


def test_wrong_password_is_reported_per_bmc(
    cli: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("IDRAC_PW", "not-the-password")
    assert cli("show", "-o", "json") == 1
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)
    assert row["error_type"] == "BMCAuthFailed"
    assert "not-the-password" not in captured.out + captured.err


@pytest.mark.parametrize(("extra", "message"), [
    (["--insecure"], "--ca and --insecure contradict each other"),
    (["--vendor", "supermicro"], "--vendor 'supermicro': use redfish or idrac"),
])
def test_contradictory_target_options_are_refused_before_any_request(
        cli: Any, idrac_served: tuple[FakeBMC, str], capsys: pytest.CaptureFixture, extra: list[str],
        message: str) -> None:
    assert cli("show", *extra) == 2
    assert message in capsys.readouterr().err
    assert idrac_served[0].log == []


def test_scp_export_writes_a_private_profile_per_bmc_and_import_waits_for_the_job(
        cli: Any, idrac_served: tuple[FakeBMC, str], tmp_path, capsys: pytest.CaptureFixture) -> None:
    from clusterctl.redfish.oem import idrac as dell

    bmc = idrac_served[0]
    export_uri = f"{dell.SCP_ACTIONS}/EID_674_Manager.ExportSystemConfiguration"
    import_uri = f"{dell.SCP_ACTIONS}/EID_674_Manager.ImportSystemConfiguration"
    profile = {"SystemConfiguration": {"Components": [{"FQDD": "BIOS.Setup.1-1", "Attributes": []}]}}
    bmc.on("POST", export_uri, lambda req: Resp(202, None, {"Location": "/redfish/v1/TaskService/Tasks/JID_1"}))
    bmc.add("/redfish/v1/TaskService/Tasks/JID_1", profile)
    assert cli("scp export", "--components", "BIOS", "--outdir", str(tmp_path)) == 0
    (written,) = tmp_path.glob("*.json")
    assert json.loads(written.read_text()) == profile and written.stat().st_mode & 0o077 == 0
    assert bmc.requests("POST", export_uri)[0].json["ShareParameters"] == {"Target": ["BIOS"]}

    bmc.on("POST", dell.LC_STATUS_URIS[0], lambda req: Resp(200, fixture("idrac9/lc_status.json")))
    bmc.on("POST", import_uri, lambda req: Resp(202, None, {"Location": "/redfish/v1/TaskService/Tasks/JID_2"}))
    bmc.add(f"{dell.JOBS}/JID_2", dict(fixture("idrac9/job.json"), Id="JID_2", JobState="Completed",
                                       Message="Successfully imported and applied Server Configuration Profile."))
    capsys.readouterr()
    assert cli("scp import", "--profile", str(written), "--components", "BIOS", "--shutdown", "NoReboot") == 0
    assert "Successfully imported" in capsys.readouterr().out
    body = bmc.requests("POST", import_uri)[0].json
    assert json.loads(body["ImportBuffer"]) == profile and body["ShutdownType"] == "NoReboot"


def test_scp_refuses_unknown_components_and_unreadable_profiles(cli: Any, tmp_path,
                                                                capsys: pytest.CaptureFixture) -> None:
    assert cli("scp export", "--components", "BIOS,GPU", "--outdir", str(tmp_path)) == 2
    assert "SCP components GPU: choose from ALL" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert cli("scp import", "--profile", str(bad)) == 2
    assert "not a readable JSON profile" in capsys.readouterr().err
