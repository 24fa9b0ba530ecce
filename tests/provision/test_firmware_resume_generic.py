"""Issue 5 on a generic (DMTF, `vendor: redfish`) BMC: `kill -9` provision around a staged firmware push,
run the same command again, and no image is pushed (so applied) twice.

The kill comes from inside the provisioning process at an exact point of the push: just *before* the
task the BMC answered with is recorded (the push reached the BMC, the journal holds only the intent),
or just *after* it is recorded. Both must be resumed by following the BMC's task, never by pushing again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from support.provision_lab import APPLIED_ONCE, FAST, Lab, assert_journal_complete, open_store

NODES = 4
TASKS = "/redfish/v1/TaskService/Tasks"
TIME_SCALE = 1000
KEY = "firmware:BIOS"  # staged OnReset: the push and the reboot that applies it are apart
# SIGKILL itself at the push of KEY: right after its intent is recorded (`intent`: nothing sent yet), once
# the BMC answered but before its task is recorded (`before`), or just after (`after`). The node is noted.
RUNNER = """
import os, signal, sys
from pathlib import Path
from clusterctl.provision import journal

when, key = os.environ["KILL_WHEN"], os.environ["KILL_AT_KEY"]
event, intent = journal.Journal.event, journal.Journal.intent

def die(node):
    Path(os.environ["KILL_NOTE"]).write_text(node)
    os.kill(os.getpid(), signal.SIGKILL)

async def event_then_die(self, kind, **kwargs):
    hit = kind == "firmware.pushed" and (kwargs.get("payload") or {}).get("key") == key
    if hit and when == "before":
        die(kwargs["node"])
    result = await event(self, kind, **kwargs)
    if hit and when == "after":
        die(kwargs["node"])
    return result

async def intent_then_die(self, node, stage, k, payload):
    await intent(self, node, stage, k, payload)
    if k == key and when == "intent":
        die(node)

journal.Journal.event, journal.Journal.intent = event_then_die, intent_then_die
from clusterctl.cli import main
sys.exit(main.run(sys.argv[1:]))
"""

def provision_killed_at_push(lab: Lab, when: str) -> str:
    """Run provision until the kill; returns the node whose push of KEY the kill interrupted."""
    note = lab.dir / "killed-node"
    cmd = [sys.executable, "-c", RUNNER, "-q", "provision", str(lab.inventory), "--yes", *FAST]
    env = {**os.environ, "KILL_WHEN": when, "KILL_AT_KEY": KEY, "KILL_NOTE": str(note)}
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode(errors="replace")
    return note.read_text()


def open_bios_intents(store: Any) -> dict[str, int]:
    """{node: intent event id} of `firmware:BIOS` intents without an outcome."""
    found: dict[str, int] = {}
    for e in store.events(0, stage="firmware"):
        if (e.payload or {}).get("key") != KEY:
            continue
        if e.kind == "firmware.intent":
            found[e.node] = e.id
        elif e.kind == "firmware.outcome":
            found.pop(e.node, None)
    return found


@pytest.mark.parametrize("when", ["intent", "before", "after"])
def test_generic_push_killed_then_resumed_is_applied_once(lab: Lab, when: str) -> None:
    lab.up(NODES, time_scale=TIME_SCALE)
    lab.inventory.write_text(lab.inventory.read_text().replace("vendor: idrac", "vendor: redfish"))

    victim = provision_killed_at_push(lab, when)
    store = open_store()
    try:
        killed = open_bios_intents(store)
        recorded = {e.node: e.payload["job"] for e in store.events(0, kind="firmware.pushed")
                    if e.payload["key"] == KEY}
    finally:
        store.close()
    assert victim in killed, "the kill left no push intent open"
    # What the kill left on the BMCs: tasks in flight (staged for the next reset), nothing applied twice yet.
    mid = lab.status_quiet()
    in_flight = {(node, f"{TASKS}/{jid}") for node, server in mid.items()
                 for jid, state in server["jobs"].items() if state not in ("Completed", "Failed")}
    assert in_flight or when == "intent"
    assert all(mid[node]["firmware_applied"].get("bios", 0) == 0 for node in killed)

    code, summary, err = lab.provision()
    assert code == 0, (summary, err)
    assert summary["ready"] == NODES and not summary["failed"]
    for node, server in lab.status().items():
        assert server["firmware_applied"] == APPLIED_ONCE, (node, server["firmware_applied"])
        assert server["firmware_failed"] == {}, node
        assert server["power_state"] == "On", node

    store = open_store()
    try:
        assert_journal_complete(store)
        resumed = store.latest_run("provision")
        assert resumed is not None and resumed.status == "succeeded"
        followed = {(e.node, e.payload["key"], e.payload["job"])
                    for e in store.events(0, run_id=resumed.id, kind="firmware.resumed")}
        known = {str(e.payload["job"]) for e in store.events(0, kind="firmware.pushed") if e.run_id != resumed.id}
        not_pushed = {e.node for e in store.events(0, run_id=resumed.id, kind="firmware.not_pushed")}
    finally:
        store.close()
    # Every push that reached a BMC before the kill was followed to its end by the next run ...
    assert in_flight <= {(node, job) for node, _, job in followed}, (in_flight, followed)
    bios = {node: job for node, key, job in followed if key == KEY}
    if when == "intent":  # ... a push that never left found absent from the BMC, and only then pushed,
        assert victim in not_pushed and victim not in bios
    elif when == "before":  # ... the one whose task was never recorded found on the BMC, by elimination,
        assert bios[victim] not in known and (victim, bios[victim]) in in_flight, (bios, known)
    else:  # ... and the one recorded just before the kill followed by the task the journal names.
        assert bios[victim] == recorded[victim], (bios, recorded)


async def operator_push(lab: Lab, node: str, bmc: str) -> None:
    """Someone else stages an image on the node's BMC (a task the journal cannot know)."""
    from clusterctl.redfish.client import RedfishClient
    from clusterctl.redfish.resources.update import simple_update
    from clusterctl.redfish.target import BMCTarget
    from clusterctl.sim.inventory import FIRMWARE, firmware_file_name

    target = BMCTarget(name=node, base_url=f"https://{bmc}:{lab.port}", username="root",
                       password=(lab.dir / "bmc-password").read_text().strip(), verify=str(lab.dir / "ca.pem"))
    async with RedfishClient(target) as client:
        resp = await simple_update(client, "https://images.test/" + firmware_file_name("PSU", FIRMWARE["PSU"]),
                                   apply_time="OnReset")
        assert resp.status_code == 202


def test_unattributable_task_fails_the_node_instead_of_pushing_again(lab: Lab) -> None:
    lab.up(NODES, time_scale=TIME_SCALE)
    lab.inventory.write_text(lab.inventory.read_text().replace("vendor: idrac", "vendor: redfish"))
    victim = provision_killed_at_push(lab, "before")
    asyncio.run(operator_push(lab, victim, lab.status_quiet()[victim]["bmc"]))

    for _ in range(2):  # refused again by the next run: the push is never repeated while in doubt
        code, summary, err = lab.provision()
        assert code == 1, (summary, err)
        failed = {f["node"]: f for f in summary["failed"]}
        stage, reason = failed[victim].get("stage"), failed[victim]["reason"]
        assert list(failed) == [victim], failed
        assert stage == "firmware" and "did not record its task" in reason and "2 task(s)" in reason, reason
        assert lab.status()[victim]["firmware_applied"].get("bios", 0) == 0
    store = open_store()
    try:
        repushed = [e for e in store.events(0, node=victim, kind="firmware.pushed") if e.payload["key"] == KEY]
        assert repushed == []
        assert_journal_complete(store)
    finally:
        store.close()
