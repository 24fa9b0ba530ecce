"""`clusterctl provision` against the embedded lab: happy path at 64 nodes, and a no-op re-run.

The lab runs as a real background process (tests/support/lab.py `start_lab`, in the lab directory
`clusterctl lab ...` reads) on a private port with simulated time compressed, so firmware jobs, iDRAC
resets and reboots pass in fractions of a second. The `Lab` helper here is shared with the other
provision test modules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli
from support.lab import Lab as LabProcess
from support.lab import start_lab
from support.ports import free_port

APPLIED_ONCE = {"idrac": 1, "bios": 1, "nic": 1, "gpu": 1, "cpld": 1}  # the PSU is already current
FAST = ["--poll-interval", "0.05", "--request-timeout", "5", "--job-timeout", "20", "--reboot-timeout", "20"]


class Lab:
    """A running lab and its inventory; `cli(...)` runs clusterctl in-process and parses JSON output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.dir = Path(os.environ["CLUSTERCTL_LAB_DIR"])
        self.port = free_port("127.1.0.1", 20000, 40000)  # chosen early: a test may run `lab up` on it itself
        self.inventory = self.dir / "provision-inventory.yaml"
        self.process: LabProcess | None = None

    def cli(self, *args: str) -> tuple[int, Any, str]:
        result = run_cli(self.capsys, *args)
        return result.code, result.parsed(), result.err

    def up(self, nodes: int, *, time_scale: float = 2000, faults: Path | None = None,
           budget_w: int | None = None, max_rebooting: int | None = None) -> None:
        # No lab SSH: these tests are about the BMC side, and a fixed SSH port would collide with other
        # labs on this machine. The inventory points SSH at a port nothing serves: `os` reports itself skipped.
        self.process = start_lab(self.dir, nodes, faults or (), time_scale=time_scale, bmc_port=self.port,
                                 ssh_port=0)
        text = self.process.inventory(self.inventory).read_text()
        if budget_w is not None:
            text = text.replace("power_budget_w: 96000", f"power_budget_w: {budget_w}")
        if max_rebooting is not None:
            text = text.replace("max_rebooting: 2", f"max_rebooting: {max_rebooting}")
        self.inventory.write_text(text)

    def status(self) -> dict[str, dict[str, Any]]:
        code, body, err = self.cli("-o", "json", "lab", "status")
        assert code == 0, err
        return {s["node"]: s for s in body["servers"]}

    def status_quiet(self) -> dict[str, dict[str, Any]]:
        """The lab's report straight from its control API (safe from another thread: no capsys)."""
        from clusterctl.sim.process import control, running

        info = running(self.dir)
        assert info is not None, "the lab is not running"
        return {s["node"]: s for s in control(self.dir, info, "GET", "/status")["servers"]}

    def provision(self, *extra: str) -> tuple[int, Any, str]:
        return self.cli("-o", "json", "provision", str(self.inventory), "--yes", *FAST, *extra)

    def down(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.cli("lab", "down")  # a lab the test started itself with `lab up`
        pid_file = self.dir / "lab.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                if b"clusterctl.sim" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, 9)
            except OSError:
                pass


@pytest.fixture(name="lab")
def lab_fixture(capsys: pytest.CaptureFixture[str]) -> Iterator[Lab]:
    running = Lab(capsys)
    try:
        yield running
    finally:
        running.down()


def open_store() -> Any:
    from clusterctl.state.store import Store

    return Store.open(os.environ["CLUSTERCTL_STATE"])


def assert_journal_complete(store: Any) -> None:
    """No event lost: ids without holes, every stage row backed by its event, every intent closed."""
    events = store.events(0)
    ids = [e.id for e in events]
    assert ids == list(range(1, len(ids) + 1)), "event ids have holes"
    by_id = {e.id: e for e in events}
    for row in store.node_stages():
        event = by_id[row.event_id]
        assert (event.node, event.stage, event.kind) == (row.node, row.stage, f"stage.{row.status}")
    open_intents: dict[tuple[str, str, str], int] = {}
    for e in events:
        if e.kind.endswith(".intent"):
            key = (e.node, e.stage, e.payload["key"])
            assert key not in open_intents, f"second intent while one is open: {key}"
            open_intents[key] = e.id
        elif e.kind.endswith(".outcome"):
            key = (e.node, e.stage, e.payload["key"])
            assert key in open_intents, f"outcome without intent: {key}"
            del open_intents[key]
    assert not open_intents, f"intents without outcome: {sorted(open_intents)}"


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
        assert len(server["bios_changes"]) == 1, node
        assert server["bios_pending"] == {} and server["power_state"] == "On"
        assert server["firmware"]["idrac"] == "7.10.30.00" and server["firmware"]["gpu"] == "24.03.1"

    code, again, err = lab.provision()
    assert code == 0, err
    assert again["ready"] == 64
    after = lab.status()
    for node in before:
        assert after[node]["firmware_applied"] == before[node]["firmware_applied"], node
        assert after[node]["resets"] == before[node]["resets"], node
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
