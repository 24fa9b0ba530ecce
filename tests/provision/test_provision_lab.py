"""`clusterctl provision` against the embedded lab: happy path at 64 nodes, and a no-op re-run.

The lab runs as a real background process (tests/support/provision_lab.py, in the lab directory
`clusterctl lab ...` reads) on a private port with simulated time compressed.
"""

from __future__ import annotations

from support.provision_lab import APPLIED_ONCE, Lab, assert_journal_complete, open_store


def test_happy_path_64_nodes_then_noop(lab: Lab) -> None:
    lab.up(64)
    code, summary, err = lab.provision()
    assert code == 0, err
    assert summary["ready"] == 64 and not summary["failed"] and not summary["pending"]
    # Honest skips, not silent passes: no OS to install, no SSH in the lab for os and validate.
    assert set(summary["skipped"]) == {"boot", "os", "validate"}
    assert all(summary["racks"][r]["peak_rebooting"] <= 2 for r in summary["racks"])
    before = lab.status()
    for node, server in before.items():
        assert server["firmware_applied"] == APPLIED_ONCE, node
        assert len(server["bios_changes"]) == 1 and server["scp_imports"] == 0, node
        assert server["bios_pending"] == {} and server["power_state"] == "On"
        assert server["firmware"]["idrac"] == "7.10.30.00" and server["firmware"]["gpu"] == "24.03.1"
        # The HGX and CPLD images wait for a virtual AC cycle after the reboot: one for both.
        assert server["ac_cycles"] == 1 and server["firmware"]["cpld"] == "1.1.5", node
        # After the iDRAC's own update it restarts and its Lifecycle Controller collects inventory:
        # every later push waited for it instead of being refused.
        assert server["lc_refusals"] == 0 and server["idrac_resets"] == 1, node

    code, again, err = lab.provision()
    assert code == 0, err
    assert again["ready"] == 64
    after = lab.status()
    for node in before:
        assert after[node]["firmware_applied"] == before[node]["firmware_applied"], node
        assert after[node]["resets"] == before[node]["resets"], node
        assert after[node]["ac_cycles"] == 1, node
        assert after[node]["bios_changes"] == before[node]["bios_changes"], node

    store = open_store()
    try:
        assert_journal_complete(store)
        ready = [r for r in store.node_stages() if r.stage == "ready"]
        assert len(ready) == 64 and {r.status for r in ready} == {"done"}
        second = store.latest_run("provision")
        assert second is not None and second.status == "succeeded"
        assert not store.events(0, run_id=second.id, kind="firmware.intent")
        assert not store.events(0, run_id=second.id, kind="bios.intent")
    finally:
        store.close()
    code, status, _ = lab.cli("-o", "json", "status")
    assert code == 0 and status["stages"]["ready"]["done"] == 64


def test_a_bios_profile_applied_with_scp_is_one_import_per_node(lab: Lab) -> None:
    """`apply_with: scp`: the iDRAC gets the profile's attributes in one SCP import that waits for
    the reboot, instead of a PATCH of the settings and a configuration job."""
    lab.up(4)
    text = lab.inventory.read_text()
    marker = "  ai-training:\n"
    assert marker in text
    lab.inventory.write_text(text.replace(marker, marker + "    apply_with: scp\n", 1))
    code, summary, err = lab.provision()
    assert code == 0, err
    assert summary["ready"] == 4
    for node, server in lab.status().items():
        assert server["scp_imports"] == 1, node
        assert len(server["bios_changes"]) == 1 and server["bios_pending"] == {}, node
        assert server["bios_changes"][0]["LogicalProc"] == "Disabled", node


def test_discover_is_no_wider_than_the_requests_in_flight(lab: Lab) -> None:
    """With more nodes discovering than requests in flight, every node's first request queues before any
    node's second and all discovers end together, late: the group is capped at the request limit."""
    from clusterctl import eventloop
    from clusterctl.inventory import load_inventory
    from clusterctl.provision.context import Tuning
    from clusterctl.provision.engine import Engine, Options

    lab.up(32)  # 4 racks: a warm-up group of 16, so without the cap 16 discover at once
    inventory = load_inventory(lab.inventory)
    options = Options(stages=("discover",), concurrency=32, global_requests=3,
                      tuning=Tuning(poll_s=0.05, request_timeout_s=5))
    store = open_store()
    try:
        summary = eventloop.run(Engine(inventory, store, options).run(inventory.select(None)))
        assert len(summary.ready) == 32, summary.as_dict()
        discovering, widest = set(), 0
        for e in store.events(0):
            if e.stage == "discover" and e.kind == "stage.running":
                discovering.add(e.node)
                widest = max(widest, len(discovering))
            elif e.stage == "discover" and e.kind in ("stage.done", "stage.failed", "stage.skipped"):
                discovering.discard(e.node)
        assert 1 < widest <= 3
    finally:
        store.close()
