"""OpenStack's sushy and sushy-oem-idrac, the libraries Ironic drives iDRACs with, against a lab BMC.

Each test is one call Ironic's idrac-redfish interfaces make, through the library's public API, with
TLS verified against the lab's CA. A call that fails here fails against the lab the way Ironic would
see it fail; the lab must answer as a real iDRAC9 (firmware 6.x/7.x) does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.peers import MGR, SYS, PeerBMC, lab_bmc, peer_module

from clusterctl.sim.inventory import LAB_OS_IMAGE

sushy = peer_module("sushy")
peer_module("sushy_oem_idrac")


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerBMC]:
    yield from lab_bmc(tmp_path_factory.mktemp("sushy"))


@pytest.fixture(scope="module")
def root(peer: PeerBMC) -> Iterator[Any]:
    conn = sushy.Sushy(f"{peer.url}/redfish/v1", username=peer.user, password=peer.password, verify=peer.ca)
    try:
        yield conn
    finally:
        logout(conn)


@pytest.fixture(scope="module")
def system(root: Any) -> Any:
    return root.get_system(SYS)


@pytest.fixture(scope="module")
def dell(root: Any) -> Any:
    return root.get_manager(MGR).get_oem_extension("Dell")


def logout(conn: Any) -> None:
    """What garbage collection of a Sushy object does (Ironic relies on it): DELETE its session."""
    conn.__del__()


def wait(predicate: Any, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "the lab did not reach the state in time"
        time.sleep(0.1)


def test_session_auth_and_system_collection(root: Any) -> None:
    assert [m.identity for m in root.get_system_collection().get_members()] == ["System.Embedded.1"]
    assert root.get_session_service().sessions.members_identities  # sushy logged in with a session


def test_system_identity_and_summaries(system: Any) -> None:
    assert system.manufacturer == "Dell Inc." and system.model == "PowerEdge XE9680"
    kinds = [p.processor_type for p in system.processors.get_members()]
    assert kinds.count(sushy.ProcessorType.CPU) == 2 and kinds.count(sushy.ProcessorType.GPU) == 8
    assert system.memory_summary.size_gib == 2048


def test_power_off_and_on(system: Any) -> None:
    system.reset_system(sushy.ResetType.FORCE_OFF)
    wait(lambda: (system.refresh(), system.power_state)[1] == sushy.PowerState.OFF)
    system.reset_system(sushy.ResetType.ON)
    wait(lambda: (system.refresh(), system.power_state)[1] == sushy.PowerState.ON)


def test_boot_override_pxe_once_uefi(system: Any) -> None:
    system.refresh()
    assert sushy.BootSource.PXE in system.get_allowed_system_boot_source_values()
    system.set_system_boot_options(
        sushy.BootSource.PXE, enabled=sushy.BootSourceOverrideEnabled.ONCE, mode=sushy.BootSourceOverrideMode.UEFI
    )
    system.refresh()
    assert system.boot.target == sushy.BootSource.PXE
    assert system.boot.enabled == sushy.BootSourceOverrideEnabled.ONCE


def test_bios_attributes_and_pending_settings(system: Any) -> None:
    bios = system.bios
    assert bios.attributes["BootMode"] == "Uefi"
    bios.set_attributes({"ProcCStates": "Enabled"}, apply_time=sushy.ApplyTime.ON_RESET)
    bios.refresh()
    assert bios.pending_attributes == {"ProcCStates": "Enabled"}


def test_bios_attribute_registry(system: Any) -> None:
    registry = system.bios.get_attribute_registry()
    assert registry is not None
    names = {a.name for a in registry.registry_entries.attributes}
    assert {"BootMode", "ProcCStates", "SysProfile"} <= names
    boot_mode = next(a for a in registry.registry_entries.attributes if a.name == "BootMode")
    assert {v["ValueName"] for v in boot_mode.allowable_values} == {"Uefi", "Bios"}


def test_secure_boot_read_and_enable(system: Any) -> None:
    secure = system.secure_boot
    secure.set_enabled(True)
    secure.refresh()
    assert secure.enabled is True


def test_ethernet_interfaces(system: Any) -> None:
    summary = system.ethernet_interfaces.summary
    assert summary and all(mac.count(":") == 5 for mac in summary)


def test_storage_drives_and_volumes(system: Any) -> None:
    storage = system.storage.get_members()
    assert storage
    assert sum(len(s.drives) for s in storage) >= 2
    assert system.storage.volumes_sizes_bytes


def test_virtual_media_insert_and_eject(system: Any) -> None:
    media = next(m for m in system.virtual_media.get_members() if sushy.VirtualMediaType.CD in m.media_types)
    media.insert_media(LAB_OS_IMAGE, inserted=True, write_protected=True)  # on the lab's image share
    media.refresh()
    assert media.inserted is True and media.image == LAB_OS_IMAGE
    media.eject_media()
    media.refresh()
    assert media.inserted is False


def test_update_service_inventory_and_simple_update(root: Any) -> None:
    update = root.get_update_service()
    versions = {m.name: m.version for m in update.firmware_inventory.get_members()}
    assert any("BIOS" in name for name in versions)
    monitor = update.simple_update("http://repo.example/fw/BIOS_2.3.1.EXE", transfer_protocol="HTTP")
    assert monitor.task_monitor_uri


def test_task_service_lists_the_update(root: Any) -> None:
    tasks = root.get_task_service().tasks.get_members()
    assert any("BIOS" in (t.name or "") or t.identity.startswith("JID_") for t in tasks)


def test_dell_lifecycle_controller_ready(dell: Any) -> None:
    assert dell.lifecycle_service.is_idrac_ready() in (True, False)
    wait(dell.lifecycle_service.is_idrac_ready)


def test_dell_job_service_unfinished_jobs_and_clear_all(dell: Any) -> None:
    assert dell.job_collection.get_unfinished_jobs()  # the staged BIOS update waits for a reboot
    dell.job_service.delete_jobs(job_ids=["JID_CLEARALL"])
    assert dell.job_collection.get_unfinished_jobs() == []


def test_dell_scp_export(dell: Any) -> None:
    response = dell.export_system_configuration(include_destructive_fields=False)
    assert response.status_code == 200
    components = {c["FQDD"]: c for c in response.json()["SystemConfiguration"]["Components"]}
    assert {"BIOS.Setup.1-1", "iDRAC.Embedded.1"} <= set(components)
    bios = {a["Name"]: a["Value"] for a in components["BIOS.Setup.1-1"]["Attributes"]}
    assert bios["BootMode"] == "Uefi"


def test_dell_idrac_card_service(dell: Any) -> None:
    allowed = dell.idrac_card_service.get_allowed_reset_idrac_values()
    assert allowed


def test_sessions_listed_and_closed(root: Any, peer: PeerBMC) -> None:
    before = set(root.get_session_service().sessions.members_identities)
    other = sushy.Sushy(f"{peer.url}/redfish/v1", username=peer.user, password=peer.password, verify=peer.ca)
    other.get_system_collection()
    grown = set(root.get_session_service().sessions.members_identities)
    assert len(grown) == len(before) + 1
    logout(other)  # sushy deletes its session; iDRAC answers 200
    after = set(root.get_session_service().sessions.members_identities)
    assert after == before

