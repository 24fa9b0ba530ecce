"""Per-node leases: several controllers share one store, each working only on the nodes it holds.

A controller is one process running a job (`provision`, ...). It registers a row in `controllers`
and renews it from one thread: that single heartbeat keeps every node lease it holds alive, so
holding 10,000 nodes costs the same one UPDATE per beat as holding one. It takes nodes as it comes
to them (work-stealing: two controllers given the same nodes split them, each node done by one) and
releases each as it finishes, marking it finished so a controller that started earlier does not do
it again. Those finished marks belong to `provision`, whose work is done once: `check` and `maintain`
repeat their work on every run, so their claims neither read nor write them (a check round must not
make a provision skip a node, nor a provision's finish make a later round skip it). `check` only
reads a node, so it leaves no trace at all; `maintain` changes nodes, so a provision that takes a
node after it re-reads the node's journal.

A controller that is gone (its pid dead on the reader's host, told apart from a reused pid by the
process start time; or no heartbeat for `ttl_s` from another host, NTP assumed) is reaped by the
next controller that looks: its row goes, its nodes become free (not finished) and its run is
marked interrupted. Its reboot slots stay in `rack_power` (the server may still be mid-reboot):
whoever takes such a node over carries its slot on until the node's next reboot or its end.

Taking and releasing are conditional writes inside the store's write transaction: the candidate
rows are read `FOR UPDATE` (PostgreSQL row locks; SQLite has one writer anyway) and an UPDATE
whose WHERE says "still free" takes them, RETURNING what it took. No two controllers can believe
they hold the same node.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from clusterctl import log
from clusterctl.errors import StateError
from clusterctl.state import schema
from clusterctl.state.leases import DEFAULT_TTL_S, Holder, holder_gone, process_start

if TYPE_CHECKING:
    from clusterctl.state.store import Store
    from clusterctl.state.transaction import Transaction

_log = log.get("state.node_leases")
_CHUNK = 500  # nodes per IN (...) list: well under both databases' bound-parameter limits
REPEATING = frozenset({"check", "maintain"})
"""Jobs done again on every run: the finished marks of `provision` are not theirs to read or write."""
READING = frozenset({"check"})
"""Jobs that only read a node: they do not mark it worked on."""


class Claim(StrEnum):
    mine = "mine"
    """Taken; nobody else worked on it since this controller started."""
    taken_over = "taken_over"
    """Taken; another controller worked on it since this one started (re-read its journal)."""
    busy = "busy"
    """A live controller holds it: ask again later (it may finish it, or die)."""
    finished = "finished"
    """Another controller finished it since this one started: not to be done again."""


@dataclass(frozen=True)
class Gone:
    """A controller reaped because it is no longer running."""

    token: str
    host: str
    pid: int
    run_id: int | None
    why: str


def _chunks(names: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(names), _CHUNK):
        yield names[i:i + _CHUNK]


def _holder(row: Any) -> Holder:
    m = row._mapping
    return Holder(name=m["job"], token=m["token"], host=m["host"], pid=m["pid"], pid_started=m["pid_started"],
                  started_at=m["started_at"], heartbeat_at=m["heartbeat_at"], command=m["command"])


def reap(tx: Transaction, *, host: str, ttl_s: float, now: float, me: str | None = None) -> list[Gone]:
    """Inside a write transaction: remove every controller that is gone, free its nodes, close its run."""
    c, nl = schema.controllers, schema.node_leases
    gone: list[Gone] = []
    for row in tx.connection.execute(sa.select(c).where(c.c.token != (me or "")).with_for_update()):
        why = holder_gone(_holder(row), host=host, ttl_s=ttl_s, now=now)
        if why is not None:
            gone.append(Gone(row.token, row.host, row.pid, row.run_id, why))
    for g in gone:
        tx.connection.execute(c.delete().where(c.c.token == g.token))
        freed = tx.connection.execute(
            nl.update().where(nl.c.controller == g.token).values(controller=None, job=None)
        ).rowcount
        if g.run_id is not None:
            run = tx.connection.execute(sa.select(schema.runs.c.status).where(schema.runs.c.id == g.run_id)).first()
            if run is not None and run.status == "running":
                tx.finish_run(g.run_id, "interrupted", {"note": f"its controller is gone: {g.why}"})
            for sub in _runs_under(tx, {g.run_id}):  # e.g. the provision runs of a killed maintain
                tx.finish_run(sub, "interrupted", {"note": f"its controller is gone: {g.why}"})
        tx.event("lease.taken_over", payload={"from": {"host": g.host, "pid": g.pid, "run": g.run_id},
                                              "why": g.why, "nodes": freed})
    return gone


def _runs_under(tx: Transaction, parents: set[int]) -> list[int]:
    """Running runs started on behalf of one of `parents` (args `under_run`: `maintain`'s provision runs
    share the controller of their rollout)."""
    r = schema.runs
    rows = tx.connection.execute(sa.select(r.c.id, r.c.args).where(r.c.status == "running"))
    return [i for i, args in rows if isinstance(args, dict) and args.get("under_run") in parents]


class Controller:
    """This process as a controller of one job on the store; `start()` one, `close()` it at the end."""

    def __init__(self, store: Store, job: str, *, ttl_s: float, heartbeat_s: float, host: str, pid: int,
                 command: str | None) -> None:
        self.store = store
        self.job = job
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s
        self.host = host
        self.pid = pid
        self.token = secrets.token_hex(16)
        self.started_at = time.time()
        self.command = command
        self.run_id: int | None = None
        self.lost: str | None = None
        self.carried: set[str] = set()
        """Nodes taken over with the reboot slot their dead holder left: this controller holds it now."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"controller-{job}", daemon=True)

    @property
    def name(self) -> str:
        """How status and the dashboard name this controller."""
        return f"{self.host}:{self.pid}"

    # -- lifetime ----------------------------------------------------------------------------------------

    def _register(self, tx: Transaction, *, inventory: str | None, args: Any) -> None:
        now = time.time()
        reap(tx, host=self.host, ttl_s=self.ttl_s, now=now)
        # A run of this job still `running` with no live controller was killed before it registered
        # (or by an older clusterctl): say so, as the single-run lock did.
        c = schema.controllers
        owned = {r for (r,) in tx.connection.execute(sa.select(c.c.run_id).where(c.c.run_id.is_not(None)))}
        owned.update(_runs_under(tx, owned))
        r = schema.runs
        for (run_id,) in tx.connection.execute(sa.select(r.c.id).where(r.c.kind == self.job, r.c.status == "running")):
            if run_id not in owned:
                tx.finish_run(run_id, "interrupted", {"note": "found unfinished by a later run"})
        self.run_id = tx.start_run(self.job, inventory=inventory, args=args)
        tx.connection.execute(c.insert().values(
            token=self.token, job=self.job, host=self.host, pid=self.pid, pid_started=process_start(self.pid),
            started_at=self.started_at, heartbeat_at=now, run_id=self.run_id, command=self.command))

    def _beat(self) -> None:
        c = schema.controllers
        while not self._stop.wait(self.heartbeat_s):
            try:
                with self.store.transaction() as tx:
                    renewed = tx.connection.execute(
                        c.update().where(c.c.token == self.token).values(heartbeat_at=time.time())
                    ).rowcount
            except StateError as exc:  # the store may come back before the leases run out
                _log.warning("controller heartbeat not written (%s)", exc)
                continue
            if renewed != 1:
                self.lost = (f"this {self.job} controller was taken over by another "
                             f"(no heartbeat for {self.ttl_s:.0f} s)")
                _log.error("%s", self.lost)
                return

    def close(self) -> None:
        """Stop the heartbeat, free the nodes still held (unfinished) and remove this controller (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.heartbeat_s + 35)
        c, nl, rp = schema.controllers, schema.node_leases, schema.rack_power
        try:
            with self.store.transaction() as tx:
                conn = tx.connection
                conn.execute(nl.update().where(nl.c.controller == self.token).values(controller=None, job=None))
                conn.execute(rp.update().where(rp.c.rebooting_by == self.token).values(rebooting_by=None, since=None))
                conn.execute(c.delete().where(c.c.token == self.token))
        except StateError as exc:
            _log.warning("controller not removed (%s): the next one takes its nodes over", exc)

    # -- nodes ---------------------------------------------------------------------------------------

    def claim(self, names: list[str]) -> dict[str, Claim]:
        """Take what of `names` is free, in one transaction, after reaping controllers that are gone."""
        with self.store.transaction() as tx:
            return self.claim_in(tx, names)

    def claim_in(self, tx: Transaction, names: list[str]) -> dict[str, Claim]:
        """Nodes this controller already holds come back `mine` (or `taken_over`), as when first taken."""
        nl = schema.node_leases
        conn = tx.connection
        now = time.time()
        reap(tx, host=self.host, ttl_s=self.ttl_s, now=now, me=self.token)
        found: dict[str, Any] = {}
        for chunk in _chunks(names):
            query = sa.select(nl).where(nl.c.node.in_(chunk)).with_for_update()
            found.update({row.node: row for row in conn.execute(query)})
        missing = [n for n in names if n not in found]
        if missing:
            conn.execute(nl.insert(), [{"node": n} for n in missing])
        result: dict[str, Claim] = {}
        repeating = self.job in REPEATING
        free = sa.or_(nl.c.controller.is_(None), nl.c.controller == self.token)
        marks: dict[str, Any] = {} if self.job in READING else {"worked_by": self.token}
        for chunk in _chunks(names):
            where = [nl.c.node.in_(chunk), free]
            if not repeating:
                where.append(sa.or_(nl.c.finished_at.is_(None), nl.c.finished_at < self.started_at))
            took = conn.execute(
                nl.update().where(*where).values(controller=self.token, job=self.job, taken_at=now, **marks)
                .returning(nl.c.node)
            ).scalars().all()
            for node in took:
                old = found.get(node)
                others = (old is not None and old.worked_by not in (None, self.token)
                          and (repeating or old.finished_at is None or old.finished_at >= self.started_at))
                result[node] = Claim.taken_over if others else Claim.mine
            if took:
                rp = schema.rack_power
                self.carried.update(conn.execute(
                    rp.update().where(rp.c.node.in_(took), rp.c.rebooting_by.is_not(None),
                                      rp.c.rebooting_by != self.token)
                    .values(rebooting_by=self.token, since=now).returning(rp.c.node)
                ).scalars().all())
        for node in names:
            if node not in result:
                old = found.get(node)
                held = old is not None and old.controller is not None
                result[node] = Claim.busy if held else Claim.finished
        return result

    def claim_or_holders(self, tx: Transaction, names: list[str]) -> dict[str, dict[str, Any]]:
        """Lease `names` in `tx`; {node: its holder (`held_by`)} of those this controller did not get. A holder
        gone between the claim and the read is named "?": the node is still not this caller's this time."""
        claims = self.claim_in(tx, names)
        busy = [n for n in names if claims[n] not in (Claim.mine, Claim.taken_over)]
        held = held_by(tx, busy) if busy else {}
        return {n: held.get(n, {"job": "?", "host": "?", "pid": "?", "run": None}) for n in busy}

    def release_in(self, tx: Transaction, names: list[str], *, finished: bool) -> None:
        """Give nodes back (finished: not to be redone by controllers that started before now; a repeating
        job's release leaves the finished marks as they were)."""
        nl, rp = schema.node_leases, schema.rack_power
        now = time.time()
        marks = {} if self.job in REPEATING else {"finished_at": now if finished else None}
        for chunk in _chunks(names):
            tx.connection.execute(
                nl.update().where(nl.c.node.in_(chunk), nl.c.controller == self.token)
                .values(controller=None, job=None, **marks)
            )
            # A slot carried over from a dead holder and not used since: the node's stages are over.
            tx.connection.execute(rp.update().where(rp.c.node.in_(chunk), rp.c.rebooting_by.is_not(None))
                                  .values(rebooting_by=None, since=None))


def start(store: Store, job: str, *, command: str | None = None, inventory: str | None = None, args: Any = None,
          ttl_s: float = DEFAULT_TTL_S, heartbeat_s: float | None = None, host: str | None = None,
          pid: int | None = None) -> Controller:
    """Register this process as a controller of `job` and start its run and heartbeat (one transaction)."""
    ctl = Controller(store, job, ttl_s=ttl_s, heartbeat_s=heartbeat_s or max(0.05, ttl_s / 6),
                     host=host or socket.gethostname(), pid=os.getpid() if pid is None else pid, command=command)
    with store.transaction() as tx:
        ctl._register(tx, inventory=inventory, args=args)
    ctl._thread.start()
    return ctl


def held_by(tx: Transaction, names: list[str]) -> dict[str, dict[str, Any]]:
    """{node: {job, host, pid, run}} of those of `names` a controller holds, read in `tx` (to name the holder
    of a node a claim found busy)."""
    nl, c = schema.node_leases, schema.controllers
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(names):
        query = (sa.select(nl.c.node, c.c.job, c.c.host, c.c.pid, c.c.run_id)
                 .join(c, c.c.token == nl.c.controller).where(nl.c.node.in_(chunk)))
        found.update({r.node: {"job": r.job, "host": r.host, "pid": r.pid, "run": r.run_id}
                      for r in tx.connection.execute(query)})
    return found


def describe(holder: dict[str, Any]) -> str:
    """How a report names the controller holding a node."""
    return f"held by {holder['job']} (host {holder['host']}, pid {holder['pid']})"


def holders(store: Store) -> dict[str, str]:
    """{node: "host:pid"} of every node a controller holds now."""
    return {node: c["controller"] for c in controllers(store) for node in c["nodes"]}


def controllers(store: Store) -> list[dict[str, Any]]:
    """The controllers registered on the store, oldest first, each with the nodes it holds (for status)."""
    nl, c = schema.node_leases, schema.controllers
    try:
        with store.engine.connect() as conn:
            found = list(conn.execute(sa.select(c).order_by(c.c.started_at)))
            held = list(conn.execute(sa.select(nl.c.controller, nl.c.node).where(nl.c.controller.is_not(None))
                                     .order_by(nl.c.node)))
    except sa.exc.DBAPIError as exc:
        raise StateError(f"cannot read the state store {store.url}: {exc.orig or exc}") from exc
    nodes: dict[str, list[str]] = {}
    for token, node in held:
        nodes.setdefault(token, []).append(node)
    return [{"controller": f"{r.host}:{r.pid}", "job": r.job, "run": r.run_id, "started_at": r.started_at,
             "heartbeat_at": r.heartbeat_at, "nodes": nodes.get(r.token, [])} for r in found]
