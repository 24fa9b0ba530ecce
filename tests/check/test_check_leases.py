"""A check round is a controller of the store: on lab nodes and one PostgreSQL store, the nodes a live
provision controller holds are skipped with the holder named (JSON and text), never judged, and no figure of
them is stored; the others are checked; the round leaves no lease behind and marks nothing done."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.cli import run_cli
from support.lab import start_lab

from clusterctl.state import node_leases, schema
from clusterctl.state.node_leases import Claim
from clusterctl.state.store import Store

NODES = ["gpu0001", "gpu0002", "gpu0003", "gpu0004"]


def figures_of(store: Store, run_id: int) -> set[str]:
    t = schema.check_figures
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(t.c.node).where(t.c.run_id == run_id).distinct()).scalars())


def test_a_round_skips_the_nodes_a_provision_holds_and_names_it(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLUSTERCTL_STATE", postgres_url)
    with start_lab(tmp_path / "lab", 4, time_scale=1.0) as lab, Store.open(postgres_url) as store:
        inventory = lab.inventory(tmp_path / "lab.yaml")
        provision = node_leases.start(store, "provision", command="provision lab.yaml", heartbeat_s=3600)
        try:
            assert provision.claim(NODES[:2]) == dict.fromkeys(NODES[:2], Claim.mine)
            result = run_cli(capsys, "-q", "-o", "json", "check", str(inventory), "--suite", "quick")
            doc = result.document("check")
            assert result.code == 0, (doc["nodes"], result.err)
            holder = {"job": "provision", "host": socket.gethostname(), "pid": os.getpid(),
                      "run": provision.run_id}
            assert doc["held_by"] == dict.fromkeys(NODES[:2], holder)
            assert doc["skipped"] == dict.fromkeys(
                NODES[:2], f"held by provision (host {socket.gethostname()}, pid {os.getpid()})")
            assert sorted(v["node"] for v in doc["nodes"]) == NODES[2:] and doc["summary"]["pass"] == 2
            assert doc["regressions"] == []
            assert figures_of(store, doc["run"]) == set(NODES[2:])  # nothing stored for the skipped nodes
            assert {s.node for s in store.node_stages() if s.stage == "check"} == set(NODES[2:])
            # The round's leases went with it; the provision's are untouched.
            assert node_leases.holders(store) == dict.fromkeys(NODES[:2], provision.name)
            assert [c["job"] for c in node_leases.controllers(store)] == ["provision"]
            assert store.run(doc["run"]).kind == "check" and store.run(doc["run"]).status == "succeeded"

            # The provision finishes gpu0002: the next round checks it (text output this time) and leaves
            # the provision's finished mark as it was.
            with store.transaction() as tx:
                provision.release_in(tx, ["gpu0002"], finished=True)
            result = run_cli(capsys, "check", str(inventory), "--suite", "quick")
            assert result.code == 0, result.out + result.err
            assert (f"Skipped 1 node(s) another controller holds: gpu0001 held by provision "
                    f"(host {socket.gethostname()}, pid {os.getpid()})") in " ".join(result.out.split())
            assert "Checked 3 nodes" in result.out
            nl = schema.node_leases
            with store.engine.connect() as conn:
                row = conn.execute(sa.select(nl).where(nl.c.node == "gpu0002")).one()
            assert row.finished_at is not None and row.worked_by == provision.token  # the round marked nothing
        finally:
            provision.close()
        assert node_leases.holders(store) == {}


def test_a_round_with_every_node_held_elsewhere_checks_nothing_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with start_lab(tmp_path / "lab", 2, time_scale=1.0, ssh_port=0) as lab, \
            Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        inventory = lab.inventory(tmp_path / "lab.yaml")
        maintain = node_leases.start(store, "maintain", heartbeat_s=3600)
        try:
            maintain.claim(["gpu0001", "gpu0002"])
            result = run_cli(capsys, "-q", "-o", "json", "check", str(inventory))
            doc = result.document("check")
            assert result.code == 0, (doc, result.err)
            assert doc["nodes"] == [] and set(doc["held_by"]) == {"gpu0001", "gpu0002"}
            assert {h["job"] for h in doc["held_by"].values()} == {"maintain"}
            assert figures_of(store, doc["run"]) == set()
        finally:
            maintain.close()
