"""Node leases and shared reboot slots on SQLite and PostgreSQL: controllers split nodes, a finished node is
not redone, a gone controller's nodes are taken over (at once on its host, after the TTL from another), and a
rack's reboot limit and power budget hold whoever asks."""

from __future__ import annotations

import subprocess
import sys
import time

import sqlalchemy as sa

from clusterctl.state import node_leases, reboot_slots, schema
from clusterctl.state.node_leases import Claim
from clusterctl.state.reboot_slots import Take
from clusterctl.state.store import Store

NODES = [f"n{i}" for i in range(1, 7)]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_two_controllers_split_nodes_and_skip_what_the_other_finished(store: Store) -> None:
    a = node_leases.start(store, "provision", heartbeat_s=3600)
    b = node_leases.start(store, "provision", heartbeat_s=3600)
    try:
        assert a.claim(NODES[:4]) == dict.fromkeys(NODES[:4], Claim.mine)
        assert b.claim(NODES) == {**dict.fromkeys(NODES[:4], Claim.busy), "n5": Claim.mine, "n6": Claim.mine}
        assert node_leases.holders(store) == {**dict.fromkeys(NODES[:4], a.name), "n5": b.name, "n6": b.name}
        with store.transaction() as tx:
            a.release_in(tx, ["n1", "n2"], finished=True)
            a.release_in(tx, ["n3"], finished=False)  # stopped before it was done
            b.release_in(tx, ["n1"], finished=True)  # not b's: no effect
        assert b.claim(NODES[:4]) == {"n1": Claim.finished, "n2": Claim.finished, "n3": Claim.taken_over,
                                      "n4": Claim.busy}
        # A controller that starts after n1 was finished does it again: that is a new run.
        c = node_leases.start(store, "provision", heartbeat_s=3600)
        try:
            assert c.claim(["n1", "n3"]) == {"n1": Claim.mine, "n3": Claim.busy}
        finally:
            c.close()
    finally:
        a.close()
        b.close()
    assert node_leases.holders(store) == {}
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.controllers)).scalar() == 0


def test_a_gone_controller_is_taken_over_at_once_on_its_host_and_after_the_ttl_from_another(store: Store) -> None:
    killed = node_leases.start(store, "provision", pid=dead_pid(), heartbeat_s=3600)
    elsewhere = node_leases.start(store, "provision", host="elsewhere.example", pid=1, heartbeat_s=3600)
    assert killed.claim(["n1"]) == {"n1": Claim.mine}
    with store.transaction() as tx:  # killed mid-reboot of n1
        assert reboot_slots.take(tx, killed.token, Take("n1", "rack1", {"n1": 10}, None, 1), now=time.time(),
                                 hold_s=100).ok
    assert elsewhere.claim(["n2"]) == {"n2": Claim.mine}
    me = node_leases.start(store, "provision", ttl_s=60, heartbeat_s=3600)
    try:
        # Starting reaped the killed one (its pid is gone on this host); the other host's is still fresh.
        assert me.claim(["n1", "n2"]) == {"n1": Claim.taken_over, "n2": Claim.busy}
        assert me.carried == {"n1"}  # n1's slot came along: the server may still be cycling
        with store.transaction() as tx:
            tx.connection.execute(schema.controllers.update().where(schema.controllers.c.token == elsewhere.token)
                                  .values(heartbeat_at=time.time() - 61))
        assert me.claim(["n2"]) == {"n2": Claim.taken_over}
        elsewhere.close()  # late: it frees nothing of what was taken over
        assert node_leases.holders(store) == {"n1": me.name, "n2": me.name}
        taken = store.events(kind="lease.taken_over")
        assert [e.payload["from"]["host"] for e in taken] == [killed.host, "elsewhere.example"]
        assert "no longer running" in taken[0].payload["why"] and "no heartbeat for 6" in taken[1].payload["why"]
        assert {e.payload["nodes"] for e in taken} == {1}
        runs = {r.id: r.status for r in store.runs()}
        assert runs[killed.run_id] == "interrupted" and runs[elsewhere.run_id] == "interrupted"
        assert runs[me.run_id] == "running"
    finally:
        me.close()
        killed.close()


def test_a_racks_reboot_limit_and_budget_hold_across_controllers(store: Store) -> None:
    max_w = {f"r{i}": 1000 for i in range(1, 6)}

    def want(node: str, budget: int | None = None) -> Take:
        return Take(node, "rack1", max_w, budget, 2)

    def take(token: str, node: str, budget: int | None = None, now: float | None = None) -> reboot_slots.Taken:
        with store.transaction() as tx:
            return reboot_slots.take(tx, token, want(node, budget), now=now or time.time(), hold_s=100)

    with store.transaction() as tx:
        reboot_slots.write_measured(tx, dict.fromkeys(max_w, "rack1"), dict.fromkeys(max_w, 400.0))
    assert take("a", "r1").ok and take("b", "r2").ok
    third = take("a", "r3")
    assert not third.ok and third.rebooting == 2
    with store.transaction() as tx:
        reboot_slots.release(tx, "a", ["r2"])  # b's slot: not a's to give back
        reboot_slots.release(tx, "b", ["r2"])
    # Budget: 2 rebooting at 1000 + 3 steady at 400 = 3200 W; a budget of 3000 admits only one.
    assert not take("a", "r3", budget=3000).ok
    assert take("a", "r3", budget=3200).estimate_w == 3200
    # A slot whose holder died stays counted until it expires (the server may still be cycling).
    assert not take("c", "r4").ok
    assert take("c", "r4", now=time.time() + 101).ok  # a's and b's slots are older than hold_s by then
    # Taking the slot of a node that already holds one (a dead holder's) replaces it, not adds to it.
    later = time.time() + 101
    assert take("d", "r4", now=later).rebooting == 1
    with store.engine.connect() as conn:
        rebooting = dict(conn.execute(sa.select(schema.rack_power.c.node, schema.rack_power.c.rebooting_by)
                                      .where(schema.rack_power.c.rebooting_by.is_not(None))).all())
    assert rebooting["r4"] == "d"


def test_the_site_wide_reboot_limit_counts_every_controllers_reboots_in_every_rack(store: Store) -> None:
    """`--max-reboots 2`: whichever controllers and racks, a third reboot waits (taken in the slot's transaction)."""
    racks = {"rack1": {"a1": 1000, "a2": 1000}, "rack2": {"b1": 1000, "b2": 1000}, "rack3": {"c1": 1000}}

    def take(token: str, node: str, most: int | None = 2) -> reboot_slots.Taken:
        rack = next(r for r, members in racks.items() if node in members)
        with store.transaction() as tx:
            return reboot_slots.take(tx, token, Take(node, rack, dict(racks[rack]), None, 2, most), now=time.time(),
                                     hold_s=100)

    assert take("a", "a1").ok and take("b", "b1").ok  # two controllers, two racks
    assert not take("a", "c1").ok and not take("b", "a2").ok  # each rack has room; the site has not
    assert take("c", "c1", most=None).ok  # a controller without the limit is not held by it...
    assert not take("a", "b2", most=3).ok  # ...but its reboot counts for those with one
    with store.transaction() as tx:
        reboot_slots.release(tx, "b", ["b1"])
    assert not take("a", "b2").ok  # still a1 and c1
    with store.transaction() as tx:
        reboot_slots.release(tx, "c", ["c1"])
    assert take("b", "b2").ok


def test_check_and_maintain_repeat_their_work_and_leave_the_finished_marks_of_provision_alone(store: Store) -> None:
    done = node_leases.start(store, "provision", heartbeat_s=3600)
    assert done.claim(["n1"]) == {"n1": Claim.mine}
    later = node_leases.start(store, "provision", heartbeat_s=3600)  # started before n1's check
    check = node_leases.start(store, "check", heartbeat_s=3600)
    maintain = node_leases.start(store, "maintain", heartbeat_s=3600)
    try:
        assert later.claim(["n2"]) == {"n2": Claim.mine}
        # A provision finished n1 after this round registered: a check or maintain takes it all the same.
        with store.transaction() as tx:
            done.release_in(tx, ["n1"], finished=True)
        assert check.claim(["n1", "n2", "n3"]) == {"n1": Claim.taken_over, "n2": Claim.busy, "n3": Claim.mine}
        assert check.claim(["n3"]) == {"n3": Claim.mine}  # held already: still this round's
        with store.transaction() as tx:
            assert node_leases.held_by(tx, ["n1", "n2", "n4"]) == {
                "n1": {"job": "check", "host": check.host, "pid": check.pid, "run": check.run_id},
                "n2": {"job": "provision", "host": later.host, "pid": later.pid, "run": later.run_id}}
            check.release_in(tx, ["n1", "n3"], finished=True)
        assert maintain.claim(["n3"]) == {"n3": Claim.mine}  # a check leaves no trace on a node
        with store.transaction() as tx:
            maintain.release_in(tx, ["n3"], finished=True)
        # The round and the rollout marked nothing finished: `later` still skips n1 (finished by the other
        # provision) and does n3, knowing that maintain changed it since it started.
        assert later.claim(["n1", "n3"]) == {"n1": Claim.finished, "n3": Claim.taken_over}
        again = node_leases.start(store, "check", heartbeat_s=3600)  # the next round takes every node again
        try:
            assert again.claim(["n1", "n4"]) == {"n1": Claim.taken_over, "n4": Claim.mine}
        finally:
            again.close()
    finally:
        for c in (done, later, check, maintain):
            c.close()
    assert node_leases.holders(store) == {}


def test_a_run_under_a_live_controller_is_its_own_and_is_closed_with_it_when_it_is_gone(store: Store) -> None:
    killed = node_leases.start(store, "maintain", pid=dead_pid(), heartbeat_s=3600)
    live = node_leases.start(store, "maintain", host="elsewhere.example", pid=1, heartbeat_s=3600)
    under_killed = store.start_run("provision", args={"under_run": killed.run_id})
    under_live = store.start_run("provision", args={"under_run": live.run_id})
    provision = node_leases.start(store, "provision", heartbeat_s=3600)  # reaps `killed`, not `live`
    try:
        assert store.run(killed.run_id).status == "interrupted"
        assert store.run(under_killed).status == "interrupted"
        assert store.run(under_live).status == "running"  # a provision run of the live rollout, not an orphan
    finally:
        provision.close()
        live.close()


def test_a_killed_check_round_is_reaped_like_any_controller(store: Store) -> None:
    killed = node_leases.start(store, "check", pid=dead_pid(), heartbeat_s=3600)
    assert killed.claim(["n1", "n2"]) == {"n1": Claim.mine, "n2": Claim.mine}
    provision = node_leases.start(store, "provision", heartbeat_s=3600)
    try:
        # At once on its host; and a round only read the nodes, so the provision has nothing to re-read.
        assert provision.claim(["n1", "n2"]) == {"n1": Claim.mine, "n2": Claim.mine}
        assert store.run(killed.run_id).status == "interrupted"
        assert [c["job"] for c in node_leases.controllers(store)] == ["provision"]
    finally:
        provision.close()
