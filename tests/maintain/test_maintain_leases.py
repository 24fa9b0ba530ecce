"""`clusterctl maintain` leases each node it works on (job "maintain") from its drain to its resume, on one
PostgreSQL store beside a provision controller: no node is worked on by both at once, a node the provision
holds all along is skipped with the holder named and left untouched, and status shows the rollout's
controller with its nodes while it runs."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from support.cli import CLI
from support.lab import start_lab
from support.maintain_lab import FAST, lab_changes, retarget_firmware, without_scheduler

from clusterctl.maintain import ledger
from clusterctl.state import node_leases
from clusterctl.state.node_leases import Claim
from clusterctl.state.store import Store

NODES = ["gpu0001", "gpu0002", "gpu0003", "gpu0004"]
HELD = "gpu0002"


class Provision(threading.Thread):
    """A provision controller working on each node once: it asks for the nodes it has not done every 50 ms,
    works 0.3 s on each it gets (the interval is recorded) and gives it back finished. It also reads, while
    it runs, which controller `clusterctl status` shows holding which nodes."""

    def __init__(self, store: Store, todo: list[str]) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.todo = list(todo)
        self.worked: dict[str, tuple[float, float]] = {}
        self.seen: dict[str, set[str]] = {}
        self.stop = threading.Event()
        self.controller = node_leases.start(store, "provision", command="provision lab.yaml", heartbeat_s=3600)

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            for c in node_leases.controllers(self.store):
                self.seen.setdefault(c["job"], set()).update(c["nodes"])
            claims = self.controller.claim(self.todo) if self.todo else {}
            got = [n for n, c in claims.items() if c in (Claim.mine, Claim.taken_over)]
            for node in got:
                began = time.time()
                time.sleep(0.3)
                self.worked[node] = (began, time.time())
                with self.store.transaction() as tx:
                    self.controller.release_in(tx, [node], finished=True)
                self.todo.remove(node)
            self.stop.wait(0.05)


def release_after_first_resume(store: Store, check: node_leases.Controller) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not store.events(0, kind="maintain.resumed", limit=1):
        time.sleep(0.05)
    check.close()


def test_maintain_and_a_provision_never_work_on_one_node_at_once(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, cli: CLI
) -> None:
    monkeypatch.setenv("CLUSTERCTL_STATE", postgres_url)
    with start_lab(tmp_path / "lab", 4, time_scale=2000) as lab, Store.open(postgres_url) as store:
        inventory = without_scheduler(lab.inventory(tmp_path / "lab.yaml"))
        retarget_firmware(inventory, lab.directory, "HGX-H100", "24.07.0")
        before = lab_changes(lab.directory)
        holder = node_leases.start(store, "provision", command="provision --limit gpu0002", heartbeat_s=3600)
        provision = Provision(store, [n for n in NODES if n != HELD])
        # A check round on gpu0004 until the rollout resumed a node: the rollout waits for it, not skips it.
        check = node_leases.start(store, "check", heartbeat_s=3600)
        release = threading.Thread(target=release_after_first_resume, args=(store, check), daemon=True)
        try:
            assert holder.claim([HELD]) == {HELD: Claim.mine}
            assert check.claim(["gpu0004"]) == {"gpu0004": Claim.mine}
            release.start()
            provision.start()
            code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--max-unavailable", "2",
                                 "--burnin-minutes", "0", "--drain-timeout", "3s", *FAST)
            deadline = time.monotonic() + 60
            while provision.todo and time.monotonic() < deadline:  # its turn on the nodes the rollout had
                time.sleep(0.1)
        finally:
            provision.stop.set()
            provision.join(timeout=30)
            provision.controller.close()
            holder.close()
            release.join(timeout=60)
            check.close()

        assert code == 1, (doc, err)
        assert sorted(doc["resumed"]) == [n for n in NODES if n != HELD], doc
        assert doc["skipped"] == {HELD: f"held by provision (host {socket.gethostname()}, pid {os.getpid()}) "
                                        "for --drain-timeout 3 s"}, doc
        assert sorted(provision.worked) == [n for n in NODES if n != HELD]  # the provision got its turn on each
        changes = lab_changes(lab.directory)
        assert changes[HELD] == before[HELD]  # never drained, flashed or rebooted by the rollout
        assert all(changes[n]["firmware_applied"]["gpu"] == 1 for n in NODES if n != HELD)

        # From the ledger: each node's drain-to-resume interval and the provision's work on it do not overlap.
        events = store.events(0, stage=ledger.STAGE)
        assert [e.kind for e in events if e.node == HELD] == ["maintain.skipped"]
        for node, (began, ended) in provision.worked.items():
            mine = [e.ts for e in events if e.node == node and e.kind in ("maintain.draining", "maintain.resumed")]
            assert len(mine) == 2, (node, mine)
            assert ended <= mine[0] or began >= mine[1], (node, (began, ended), mine)
        # Status showed the rollout's controller holding nodes while it ran; none is left afterwards.
        assert provision.seen.get("maintain"), provision.seen
        assert HELD not in provision.seen["maintain"]
        assert node_leases.controllers(store) == []
        assert store.run(doc["run"]).kind == "maintain"
