"""The generic (DMTF, non-iDRAC) Redfish path through provision: the same lab, its nodes listed as vendor
`redfish`, so no Dell job queue or Lifecycle Controller is used: pushes are followed as TaskService tasks
and the BIOS settings wait for the reset (`@Redfish.SettingsApplyTime` OnReset)."""

from __future__ import annotations

from support.provision_lab import APPLIED_ONCE, Lab, assert_journal_complete, open_store


def test_generic_redfish_nodes_reach_ready_with_each_image_applied_once(lab: Lab) -> None:
    lab.up(4, time_scale=1000)
    text = lab.inventory.read_text()
    assert "vendor: idrac" in text
    lab.inventory.write_text(text.replace("vendor: idrac", "vendor: redfish"))

    code, summary, err = lab.provision()
    assert code == 0, err
    assert summary["ready"] == 4 and not summary["failed"]
    for node, server in lab.status().items():
        assert server["firmware_applied"] == APPLIED_ONCE, node
        assert len(server["bios_changes"]) == 1 and server["bios_pending"] == {}, node
        assert server["power_state"] == "On", node

    store = open_store()
    try:
        pushed = [e.payload["job"] for e in store.events(kind="firmware.pushed")]
        assert len(pushed) == 4 * len(APPLIED_ONCE)
        assert all(str(job).startswith("/redfish/v1/TaskService/Tasks/") for job in pushed), pushed[:3]
        queued = [e.payload for e in store.events(kind="bios.queued")]
        assert len(queued) == 4 and all(q["job"] is None for q in queued)  # no Dell config job
        assert not store.events(kind="bmc.basic_auth")
    finally:
        store.close()

    code, again, err = lab.provision()
    assert code == 0, err
    after = lab.status()
    assert all(s["firmware_applied"] == APPLIED_ONCE and len(s["bios_changes"]) == 1 for s in after.values())
    store = open_store()
    try:
        second = store.latest_run("provision")
        assert second is not None and not store.events(run_id=second.id, kind="firmware.intent")
        assert_journal_complete(store)
    finally:
        store.close()
