"""Reboot slots shared by every controller of a store: a rack's power budget and reboot limit hold
whichever controllers reboot its nodes.

`rack_power` has one row per node: the draw discover measured (so another controller estimates
this node's steady draw instead of assuming its maximum) and, while it reboots, the controller
holding its slot. A take reads the rack's rows `FOR UPDATE`, sums the estimate as power.py
describes, and marks the node rebooting only if the count and the budget allow: the budget and the
slot are one decision in one transaction, and so is the site-wide `--max-reboots` count.

A slot whose holder died is still counted (the server may still be cycling) until the node's next
holder finishes it or `hold_s` (the longest a reboot may take) passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from clusterctl.state import schema
from clusterctl.state.transaction import Transaction


@dataclass(frozen=True)
class Take:
    """A request for `node`'s reboot slot in `rack`, with what the taker knows of the rack."""

    node: str
    rack: str
    max_w: dict[str, int | None]
    budget_w: int | None
    max_rebooting: int
    max_total: int | None = None
    """At most this many nodes rebooting on the whole site, whichever controller reboots them."""


@dataclass(frozen=True)
class Taken:
    ok: bool
    rebooting: int
    estimate_w: float
    alone_w: float
    """The rack's estimate were this node the only one rebooting: over the budget, it never fits."""
    unmeasured: int
    """Nodes of the rack without a measured draw (counted at their maximum): none, and the estimate
    cannot go down any more."""


def write_measured(tx: Transaction, rack_of: dict[str, str], watts: dict[str, float]) -> None:
    """Share measured steady draws (upsert; the rebooting mark is left alone)."""
    if not watts:
        return
    t = schema.rack_power
    stmt = tx.upsert(t)
    stmt = stmt.on_conflict_do_update(index_elements=[t.c.node], set_={"measured_w": stmt.excluded.measured_w,
                                                                       "rack": stmt.excluded.rack})
    tx.connection.execute(stmt, [{"node": n, "rack": rack_of[n], "measured_w": w} for n, w in watts.items()])


def release(tx: Transaction, token: str, nodes: list[str]) -> None:
    if nodes:
        t = schema.rack_power
        tx.connection.execute(t.update().where(t.c.node.in_(nodes), t.c.rebooting_by == token)
                              .values(rebooting_by=None, since=None))


def take(tx: Transaction, token: str, want: Take, *, now: float, hold_s: float) -> Taken:
    """Mark `want.node` rebooting if its rack stays within its limits with it; else leave everything."""
    t = schema.rack_power
    rows = list(tx.connection.execute(sa.select(t).where(t.c.rack == want.rack).with_for_update()))
    measured = {r.node: r.measured_w for r in rows if r.measured_w is not None}
    rebooting = {r.node for r in rows if r.rebooting_by is not None and r.since is not None and r.since > now - hold_s}
    rebooting.discard(want.node)  # a slot a dead holder left on this very node is taken over, not added to

    def estimate(with_node: set[str]) -> float:
        return sum(float(w or 0) if n in with_node else float(measured.get(n, w or 0))
                   for n, w in want.max_w.items())

    after = rebooting | {want.node}
    fits = len(rebooting) < want.max_rebooting and (want.budget_w is None or estimate(after) <= want.budget_w)
    if fits and want.max_total is not None:  # every writer holds the store's one lock: the count stays true
        others = tx.connection.execute(
            sa.select(sa.func.count()).select_from(t)
            .where(t.c.rebooting_by.is_not(None), t.c.since > now - hold_s, t.c.node != want.node)
        ).scalar_one()
        fits = others < want.max_total
    unmeasured = sum(n not in measured for n in want.max_w)
    if not fits:
        return Taken(False, len(rebooting), estimate(rebooting), estimate({want.node}), unmeasured)
    stmt = tx.upsert(t).values(node=want.node, rack=want.rack, rebooting_by=token, since=now)
    stmt = stmt.on_conflict_do_update(index_elements=[t.c.node],
                                      set_={"rebooting_by": stmt.excluded.rebooting_by, "since": stmt.excluded.since})
    tx.connection.execute(stmt)
    return Taken(True, len(after), estimate(after), estimate({want.node}), unmeasured)
