"""The embedded lab as the provision tests drive it: started as a real background process on a
private port with simulated time compressed, so firmware jobs, iDRAC resets and reboots pass in
fractions of a second; and checks of the journal a run leaves. tests/provision/conftest.py makes
`Lab` the `lab` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.cli import run_cli
from support.lab import Lab as LabProcess
from support.lab import lab_dir, start_lab, stop_lab_cli
from support.ports import free_port

APPLIED_ONCE = {"idrac": 1, "bios": 1, "nic": 1, "gpu": 1, "cpld": 1}  # the PSU is already current
RUNNER = "import sys\nfrom clusterctl.cli import main\nsys.exit(main.run(sys.argv[1:]))\n"
FAST = ["--poll-interval", "0.05", "--request-timeout", "5", "--job-timeout", "20", "--reboot-timeout", "20"]


class Lab:
    """A running lab and its inventory; `cli(...)` runs clusterctl in-process and parses JSON output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.dir = lab_dir()
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

    def provision_process(self, *extra: str, new_session: bool = False) -> subprocess.Popen[bytes]:
        """`clusterctl provision` in a process of its own, which a test can kill -9 mid-run."""
        cmd = [sys.executable, "-c", RUNNER, "-q", "provision", str(self.inventory), "--yes", *extra]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=new_session)

    def down(self) -> None:
        if self.process is not None:
            self.process.stop()
        stop_lab_cli(self.cli)  # a lab the test started itself with `lab up`


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
