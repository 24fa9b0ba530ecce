"""quarantine()/release() as other commands call them (`validate --quarantine`), on a real Slurm cluster."""

from __future__ import annotations

import os

import pytest

from clusterctl.burnin.quarantine import Schedulers, quarantine, release
from clusterctl.errors import ClusterctlError
from clusterctl.state.store import Store


@pytest.fixture
def store():
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as opened:
        yield opened


def test_drain_then_resume_through_the_recorded_mechanism(slurm_cluster, store) -> None:
    reach = Schedulers(slurm_conf=str(slurm_cluster.conf))
    actions = quarantine({"node3": ["rank 2: loss not finite at step 5", "rank 2: straggler"]}, via="slurm",
                         store=store, source="validate", schedulers=reach, run_id=None)
    assert [(a.node, a.ok) for a in actions] == [("node3", True)]
    assert slurm_cluster.drain_reasons() == {"node3": "validate failed: rank 2: loss not finite at step 5; rank 2: "
                                                      "straggler"}
    assert [(f.node, f.source) for f in store.flags(quarantined_only=True)] == [("node3", "validate:slurm")]

    action = release("node3", store=store)
    assert (action.node, action.via, action.ok) == ("node3", "slurm", True)
    assert slurm_cluster.drain_reasons() == {}
    slurm_cluster.wait_idle(timeout_s=20)
    assert store.flags(quarantined_only=True) == []
    kinds = [e.kind for e in store.events(node="node3")]
    assert kinds == ["flag.quarantined", "quarantine.applied", "flag.cleared", "quarantine.released"]


def test_a_node_slurm_refuses_is_reported_and_not_flagged(slurm_cluster, store) -> None:
    actions = quarantine({"node9": "burn-in failed", "node1": "burn-in failed"}, via="slurm", store=store,
                         source="burnin", schedulers=Schedulers(slurm_conf=str(slurm_cluster.conf)))
    by_node = {a.node: a for a in actions}
    assert not by_node["node9"].ok and "scontrol update" in by_node["node9"].detail
    assert by_node["node1"].ok and list(slurm_cluster.drain_reasons()) == ["node1"]
    assert [f.node for f in store.flags(quarantined_only=True)] == ["node1"]
    release("node1", store=store)
    slurm_cluster.wait_idle(timeout_s=20)


def test_long_reasons_are_cut_to_what_slurm_keeps(slurm_cluster, store) -> None:
    quarantine({"node2": "x" * 1000}, via="slurm", store=store, source="burnin",
               schedulers=Schedulers(slurm_conf=str(slurm_cluster.conf)))
    reason = slurm_cluster.drain_reasons()["node2"]
    assert reason.startswith("burnin failed: xxx") and len(reason) == 200
    release("node2", store=store)
    slurm_cluster.wait_idle(timeout_s=20)


def test_unknown_mechanism_and_unrecorded_release_are_input_errors(store) -> None:
    with pytest.raises(ClusterctlError, match="cannot quarantine via 'pbs'"):
        quarantine({"n1": "x"}, via="pbs", store=store, source="burnin")
    with pytest.raises(ClusterctlError, match="no quarantine recorded"):
        release("n1", store=store)


def test_release_cli_without_a_record_is_one_line(cli) -> None:
    result = cli("burnin", "release", "gpu7")
    assert result.code == 2
    assert result.err.strip().startswith("error: gpu7 has no quarantine recorded") and "Traceback" not in result.err
