"""`clusterctl maintain` against a real Slurm cluster (slurmctld and one slurmd per node on this host) and the
lab's BMCs and SSH nodes: a real `sleep` job holds one node until it ends, a job that would outlast the
drain is requeued by --force-after, a node an operator drained counts against the floor and is left alone,
the capacity floor is sampled from `sinfo` throughout, and a node that fails validation stays drained with
the failing check in `sinfo -R`."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from support.cli import CLI
from support.lab import start_lab
from support.maintain_lab import FAST, lab_changes, retarget_firmware, wait_running
from support.slurm import SlurmCluster

from clusterctl.state.store import Store

NODES = ["gpu0001", "gpu0002", "gpu0003", "gpu0004", "gpu0005"]
IN_SERVICE = {"idle", "mix", "alloc", "comp"}


class Sampler(threading.Thread):
    """`sinfo` every 0.2 s: how many nodes cannot take jobs (drained, draining, down, not responding)."""

    def __init__(self, cluster: SlurmCluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.samples: list[dict[str, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(RuntimeError):  # slurmctld busy for a moment: the next sample counts
                self.samples.append(self.cluster.node_states())
            self.done.wait(0.2)

    def worst(self) -> tuple[int, dict[str, str]]:
        def down(s: dict[str, str]) -> int:
            return sum(state not in IN_SERVICE for state in s.values())

        worst = max(self.samples, key=down)
        return down(worst), worst


def test_maintain_drains_waits_for_the_job_updates_validates_and_resumes(
        slurm: SlurmCluster, tmp_path: Path, cli: CLI) -> None:
    faults = [{"node": "gpu0003", "kind": "ib_port_down", "params": {"port": 2}}]
    with start_lab(tmp_path / "lab", 5, faults, time_scale=2000) as lab:
        inventory = lab.inventory(tmp_path / "lab.yaml")
        retarget_firmware(inventory, lab.directory, "HGX-H100", "24.07.0")
        job = slurm.run("sbatch", "--parsable", "-w", "gpu0001", "-o", "/dev/null", "--wrap", "sleep 3").strip()
        endless = slurm.run("sbatch", "--parsable", "-w", "gpu0002", "-o", "/dev/null", "--wrap",
                            "sleep 300").strip()
        wait_running(slurm, job)
        wait_running(slurm, endless)
        # An operator's drain: the node counts against the floor and is left alone.
        slurm.run("scontrol", "update", "nodename=gpu0005", "state=drain", "reason=admin: fan 3 noisy")
        sampler = Sampler(slurm)
        sampler.start()
        try:
            code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--max-unavailable", "3",
                                 "--burnin-minutes", "0", "--force-after", "6s", "--slurm-conf", str(slurm.conf),
                                 *FAST)
        finally:
            sampler.done.set()
            sampler.join(5)
            requeued = slurm.run("scontrol", "show", "job", endless)
            slurm.run("scancel", endless)
        assert code == 1, (doc, err)  # one node failed
        assert doc["resumed"] == ["gpu0001", "gpu0002", "gpu0004"], doc
        assert doc["skipped"] == {"gpu0005": "out of service for another reason: drained: admin: fan 3 noisy"}
        assert list(doc["failed"]) == ["gpu0003"] and "fabric.ib_port_state" in doc["failed"]["gpu0003"]

        # The floor held at every sample: never more than 3 of the 5 nodes out of service, the operator's
        # drained node counted, so two at a time were maintained.
        worst, picture = sampler.worst()
        assert len(sampler.samples) > 10 and worst <= 3, picture
        assert any(sum(s not in IN_SERVICE for s in sample.values()) == 3 for sample in sampler.samples)

        # The failing node stays drained with the failing check as its reason; the others serve again.
        reasons = slurm.drain_reasons()
        assert sorted(reasons) == ["gpu0003", "gpu0005"] and reasons["gpu0005"] == "admin: fan 3 noisy"
        assert reasons["gpu0003"].startswith("clusterctl maintain failed: validate: fabric.ib_port_state")
        states = slurm.node_states()
        assert all(states[n].rstrip("*") == "idle" for n in ("gpu0001", "gpu0002", "gpu0004")), states

        # The job ran to its end before gpu0001 was touched, and every node got the new image once.
        shown = slurm.run("scontrol", "show", "job", job)
        assert "JobState=COMPLETED" in shown, shown
        end = time.mktime(time.strptime(shown.split("EndTime=")[1].split()[0], "%Y-%m-%dT%H:%M:%S"))
        with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
            events = store.events(0, node="gpu0001", stage="maintain")
            forced = store.events(0, node="gpu0002", stage="maintain")
        assert "maintain.forcing" not in [e.kind for e in events]  # its job ended on its own
        requeue = [e.payload for e in forced if e.kind == "maintain.draining" and e.payload.get("requeued")]
        assert requeue == [{"state": "draining", "reason": "jobs requeued", "requeued": [endless]}], forced
        assert "Restarts=1" in requeued, requeued
        drained = next(e for e in events if e.kind == "maintain.drained")
        updating = next(e for e in events if e.kind == "maintain.updating")
        assert drained.ts >= end - 1 and updating.ts >= drained.ts
        changes = lab_changes(lab.directory)
        assert {n: c["firmware"]["gpu"] for n, c in changes.items() if n != "gpu0005"} == \
            dict.fromkeys(NODES[:4], "24.07.0")
        assert all(c["firmware_applied"]["gpu"] == 1 for n, c in changes.items() if n != "gpu0005")
        assert changes["gpu0005"]["firmware_applied"] == {}
