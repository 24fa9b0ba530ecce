"""`clusterctl maintain` on the issue's lab fleet: 1,000 nodes, an HGX firmware change on every node and a driver
change on two, at --max-unavailable 5% (a floor of 50). It finishes, every node runs its targets afterwards (`plan`
finds no drift), the floor holds at every instant (from the rollout's events) and in samples of the lab's servers
taken while it runs, and the os stage's playbooks run only on the two nodes whose software drifted.

The inventory pins every other firmware component at what the lab ships and names no BIOS profile, so the HGX
image is each node's whole firmware change (iDRAC, BIOS and multi-component updates are the other maintain
tests'). 290-320 CPU seconds in all (controller 175-195, lab 95-100, the two nodes' playbooks about 10), 0.3 s
a node: about four minutes on a busy two-core runner.
`benchmarks/maintain_scale.py --nodes 1000 --max-unavailable 5% --driver-nodes 4` measures the same case against
its lower bound.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from support.cli import CLI
from support.lab import start_lab
from support.maintain_lab import (
    FAST,
    at_shipped_firmware,
    lab_servers,
    peak_out_of_service,
    retarget_firmware,
    retarget_software_on,
    without_scheduler,
)

from clusterctl.state.store import Store

NODES = 1000
WIDTH = 50  # 5% of 1,000
DRIVER_NODES = ["gpu0250", "gpu0750"]


class PowerSampler(threading.Thread):
    """How many of the lab's servers are not running their OS, sampled while the rollout goes on: an update
    takes a node out of service by resetting it, so more than the floor allows would show here."""

    def __init__(self, lab_dir: Path) -> None:
        super().__init__(daemon=True)
        self.lab_dir = lab_dir
        self.done = threading.Event()
        self.samples: list[int] = []

    def run(self) -> None:
        while not self.done.wait(1.0):  # each sample is the whole lab's report: every second is enough
            servers = lab_servers(self.lab_dir)
            self.samples.append(sum(s.get("power_state") != "On" for s in servers.values()))


@pytest.mark.timeout(1800)  # a fleet's rollout: minutes on a busy two-core runner, beyond the suite's 300 s
def test_a_fleet_wide_firmware_and_driver_change_never_breaks_the_floor(tmp_path: Path, cli: CLI) -> None:
    with start_lab(tmp_path / "lab", NODES, time_scale=2000) as lab:
        inventory = at_shipped_firmware(without_scheduler(lab.inventory(tmp_path / "lab.yaml")), lab.directory)
        retarget_firmware(inventory, lab.directory, "HGX-H100", "24.07.0")
        retarget_software_on(inventory, ",".join(DRIVER_NODES), driver="550.127.05", fabricmanager="550.127.05")

        code, doc, err = cli("-o", "json", "plan", str(inventory))
        rows = {(r["item"], r["to"]): r["count"] for r in doc["summary"]}
        assert code == 1 and rows == {("HGX-H100", "24.07.0"): NODES, ("driver", "550.127.05"): 2,
                                      ("fabricmanager", "550.127.05"): 2}, (doc["summary"], err)

        sampler = PowerSampler(lab.directory)
        sampler.start()
        try:
            code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--max-unavailable", "5%",
                                 "--burnin-minutes", "0", *FAST)
        finally:
            sampler.done.set()
            sampler.join(30)
        assert code == 0 and len(doc["resumed"]) == NODES and not doc["failed"] and not doc["skipped"], (doc, err)
        assert doc["max_unavailable"] == WIDTH and doc["peak_unavailable"] <= WIDTH

        with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
            peak, _ = peak_out_of_service(store, doc["run"])
            updating = {e.node: e.payload["stages"] for e in store.events(0, kind="maintain.updating")}
        assert 1 < peak <= WIDTH, peak  # several at once, never more than the floor allows
        assert len(sampler.samples) > 5 and max(sampler.samples) <= WIDTH, sampler.samples
        # The playbooks ran only where the software drifted.
        assert sorted(n for n, stages in updating.items() if "os" in stages) == DRIVER_NODES

        code, doc, err = cli("-o", "json", "plan", str(inventory))
        assert code == 0 and doc["drifted"] == 0 and doc["unreadable"] == [], (doc["summary"], err)
