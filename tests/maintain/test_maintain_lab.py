"""`clusterctl maintain` on the lab with no scheduler: nodes are taken directly, in batches under the floor."""

from __future__ import annotations

from pathlib import Path

from support.cli import CLI
from support.lab import Lab
from support.maintain_lab import FAST, lab_changes, retarget_firmware, without_scheduler

from clusterctl.state.store import Store


def test_maintain_updates_every_drifted_node_and_resumes_it(lab_with_ssh: Lab, tmp_path: Path, cli: CLI) -> None:
    inventory = without_scheduler(lab_with_ssh.inventory(tmp_path / "lab.yaml"))
    retarget_firmware(inventory, lab_with_ssh.directory, "HGX-H100", "24.07.0")

    code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--max-unavailable", "2",
                         "--burnin-minutes", "0", *FAST)
    assert code == 0, (doc, err)
    assert doc["resumed"] == ["gpu0001", "gpu0002", "gpu0003", "gpu0004"] and doc["failed"] == {}
    assert doc["peak_unavailable"] <= 2
    changes = lab_changes(lab_with_ssh.directory)
    assert {n: c["firmware"]["gpu"] for n, c in changes.items()} == dict.fromkeys(changes, "24.07.0")
    assert all(c["firmware_applied"]["gpu"] == 1 for c in changes.values())

    code, doc, err = cli("-o", "json", "plan", str(inventory))
    assert code == 0 and doc["drifted"] == 0, (doc, err)
    import os

    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        kinds = [e.kind for e in store.events(0, node="gpu0001", stage="maintain")]
    assert kinds == ["maintain.draining", "maintain.drained", "maintain.updating", "maintain.updated",
                     "maintain.validating", "maintain.resuming", "maintain.resumed"]
