"""`clusterctl maintain` on Kubernetes nodes: the real `kubernetes` client against an API server double
(tests/support/kubedrain.py) that enforces a PodDisruptionBudget, with the lab's BMCs and SSH nodes behind."""

from __future__ import annotations

import os
from pathlib import Path

from support.cli import CLI
from support.kubedrain import FakeKube, Pod
from support.lab import start_lab
from support.maintain_lab import FAST, lab_changes, retarget_firmware

from clusterctl.state.store import Store

NODES = ["gpu0001", "gpu0002", "gpu0003", "gpu0004"]


def test_cordon_evict_within_the_budget_update_and_uncordon(tmp_path: Path, cli: CLI) -> None:
    kube = FakeKube(NODES)
    kube.pods = [Pod(f"exporter-{n}", n, daemonset=True) for n in NODES] + [
        Pod("train-0", "gpu0001", budget="train", ends_after_cordon=2.0),  # its budget allows no eviction
        Pod("web-1", "gpu0002"),
    ]
    faults = [{"node": "gpu0003", "kind": "ib_port_down", "params": {"port": 2}}]
    try:
        with start_lab(tmp_path / "lab", 4, faults, time_scale=2000) as lab:
            inventory = lab.inventory(tmp_path / "lab.yaml")
            inventory.write_text(inventory.read_text().replace("    slurm: {partition: gpu}\n", ""))
            retarget_firmware(inventory, lab.directory, "HGX-H100", "24.07.0")
            code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--max-unavailable", "2",
                                 "--burnin-minutes", "0", "--kubeconfig", str(kube.kubeconfig(tmp_path / "kc")),
                                 *FAST)
            changes = lab_changes(lab.directory)
    finally:
        kube.stop()
    assert code == 1, (doc, err)
    assert doc["resumed"] == ["gpu0001", "gpu0002", "gpu0004"]
    assert list(doc["failed"]) == ["gpu0003"] and "fabric.ib_port_state" in doc["failed"]["gpu0003"]

    # At no change of any node were more than 2 of the 4 cordoned.
    assert kube.peak_cordoned == 2
    # The budget held: train-0 was refused until it finished, and gpu0001 was only updated after that.
    pods = {p.name: p for p in kube.pods}
    assert pods["train-0"].evictions_refused >= 1 and not pods["train-0"].evicted
    assert pods["web-1"].evicted and not any(pods[f"exporter-{n}"].evicted for n in NODES)
    assert not [path for method, path in kube.requests if method == "POST" and "exporter" in path]
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        drained = next(e for e in store.events(0, node="gpu0001", stage="maintain") if e.kind == "maintain.drained")
    assert drained.ts >= kube.finished["train-0"]

    # Only the failed node stays out: cordoned and tainted as burn-in's quarantine does.
    assert kube.cordoned == {"gpu0001": False, "gpu0002": False, "gpu0003": True, "gpu0004": False}
    assert {"key": "clusterctl.io/burnin", "value": "failed", "effect": "NoSchedule"} in kube.taints["gpu0003"]
    assert all(c["firmware"]["gpu"] == "24.07.0" and c["firmware_applied"]["gpu"] == 1 for c in changes.values())
