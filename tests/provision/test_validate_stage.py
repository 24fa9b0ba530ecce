"""The provision `validate` stage on a real sshd host: it runs `clusterctl validate`'s node-side checks
and writes them through the run's journal (never to the store directly from the event loop); a node
whose SSH port does not answer is reported skipped, never passed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.ports import free_port
from support.sshd import SSHFleet, fleet_fixture

from clusterctl.errors import NodeCheckFailed
from clusterctl.inventory import load_inventory
from clusterctl.provision.context import NodeContext, StageResult, Tuning
from clusterctl.provision.journal import Journal
from clusterctl.provision.stages import validate as validate_stage
from clusterctl.state.store import Store

fleet = fleet_fixture("validate-stage", count=1, subnet=86)


def run_stage(inventory_path: Path, store: Store) -> tuple[StageResult | NodeCheckFailed, int, int]:
    """The stage's result (or its failure) for host01, the provision run's id and the journal's commits."""
    inventory = load_inventory(inventory_path)
    node = inventory.select("host01")[0]
    run_id = store.start_run("provision", inventory=str(inventory_path))

    async def go() -> tuple[StageResult | NodeCheckFailed, int]:
        async with Journal(store, run_id) as journal:
            ctx = NodeContext(node=node, target=None, inventory=inventory, journal=journal,  # type: ignore[arg-type]
                              gate=None, tuning=Tuning(), limits=None, retry=None)  # type: ignore[arg-type]
            try:
                result: StageResult | NodeCheckFailed = await validate_stage.run(ctx)
            except NodeCheckFailed as exc:
                result = exc
        return result, journal.commits

    result, commits = asyncio.run(go())
    return result, run_id, commits


def test_checks_are_recorded_through_the_journal(fleet: SSHFleet, tmp_path: Path) -> None:
    path = fleet.write_inventory(tmp_path / "site.yaml", "stage")
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        result, run_id, commits = run_stage(path, store)
        checks = store.checks("host01", run_id=run_id)
    assert checks, "no check recorded under the provision run"
    assert commits >= 1
    assert {"rule", "remediation"} <= set(checks[0].data)
    failed = [c.check for c in checks if c.status == "fail"]
    if isinstance(result, NodeCheckFailed):  # this machine has no GPU for the agent to find
        assert failed and all(name in str(result) for name in failed)
    else:
        assert not failed and result.status == "done"
        assert result.detail is not None and result.detail["checks"] == len(checks)


def test_a_node_without_ssh_is_skipped(fleet: SSHFleet, tmp_path: Path) -> None:
    path = fleet.write_inventory(tmp_path / "site.yaml", "stage")
    host = fleet.hosts[0]
    path.write_text(path.read_text().replace(f"port: {host.port}", f"port: {free_port(host.address)}"))
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        result, run_id, _ = run_stage(path, store)
        assert store.checks("host01", run_id=run_id) == []
    assert isinstance(result, StageResult) and result.status == "skipped"
    assert result.reason is not None and result.reason.startswith("the node-side checks need SSH: ")
