"""Named leases in the store: at most one process at a time does a given job (one `provision` per store).

A lease row names its holder (host, pid, when it started) and carries a heartbeat the holder
renews from a thread. Another process may take the lease over only when the holder is known to be
gone: on the same host, its pid is dead (or now belongs to a different process, told apart by the
process start time); from another host, its heartbeat is older than the lease's time to live. So a
`kill -9` followed by the same command on the same machine goes on at once, and a crashed
controller elsewhere blocks the store for at most `ttl_s`.

Taking, renewing and releasing are single write transactions, serialised by the store's writer
lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock), so two processes can never both
believe they took the same lease. Heartbeat ages compare the holder's clock with the reader's:
hosts sharing a store are assumed to keep NTP time, well within the default 60 s.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from clusterctl import log
from clusterctl.errors import StateError
from clusterctl.state import schema

if TYPE_CHECKING:
    from clusterctl.state.store import Store

_log = log.get("state.leases")
DEFAULT_TTL_S = 60.0


class LeaseHeld(StateError):
    """Another live process holds the lease; the message names it."""

    def __init__(self, message: str, holder: Holder) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    name: str
    token: str
    host: str
    pid: int
    pid_started: float | None
    started_at: float
    heartbeat_at: float
    command: str | None

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        started = datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        text = f"host {self.host}, pid {self.pid}, started at {started}"
        text += f", last heartbeat {max(0.0, now - self.heartbeat_at):.0f} s ago"
        return text + (f" ({self.command})" if self.command else "")


def process_start(pid: int) -> float | None:
    """When `pid` started (clock ticks since boot, from /proc); None where there is no /proc."""
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: PTH123, SIM115 - one read, closed by GC
    except OSError:
        return None
    try:
        return float(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, started: float | None) -> bool:
    """Is the process that took the lease still running? A reused pid with another start time is not it."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if started is not None and sys.platform.startswith("linux"):
        now = process_start(pid)
        return now is None or now == started
    return True


def holder_gone(holder: Holder, *, host: str, ttl_s: float, now: float) -> str | None:
    """Why the holder may be replaced, or None while it may still be working."""
    if holder.host == host and not pid_alive(holder.pid, holder.pid_started):
        return f"pid {holder.pid} is no longer running on {host}"
    if now - holder.heartbeat_at > ttl_s:
        return f"no heartbeat for {now - holder.heartbeat_at:.0f} s (lease time to live {ttl_s:.0f} s)"
    return None


def _read(conn: sa.Connection, name: str) -> Holder | None:
    t = schema.leases
    row = conn.execute(sa.select(t).where(t.c.name == name)).first()
    return Holder(**row._mapping) if row is not None else None


def try_take(conn: sa.Connection, me: Holder, *, ttl_s: float) -> tuple[Holder | None, str | None]:
    """Inside a write transaction: take `me.name` unless a live holder has it.

    Returns (the refusing holder, None) when refused, else (the replaced holder or None, why it was replaced).
    """
    t = schema.leases
    current = _read(conn, me.name)
    values = {k: getattr(me, k) for k in ("token", "host", "pid", "pid_started", "started_at", "heartbeat_at",
                                          "command")}
    if current is None:
        conn.execute(t.insert().values(name=me.name, **values))
        return None, None
    why = holder_gone(current, host=me.host, ttl_s=ttl_s, now=me.started_at)
    if why is None:
        return current, None
    conn.execute(t.update().where(t.c.name == me.name, t.c.token == current.token).values(**values))
    return current, why


class Lease:
    """A lease this process holds; renewed from a daemon thread until `release()` (or the context ends)."""

    def __init__(self, store: Store, holder: Holder, *, ttl_s: float, heartbeat_s: float) -> None:
        self.store = store
        self.holder = holder
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{holder.name}", daemon=True)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _beat(self) -> None:
        t = schema.leases
        failures = 0
        while not self._stop.wait(self.heartbeat_s):
            try:
                with self.store.transaction() as tx:
                    renewed = tx.connection.execute(
                        t.update().where(t.c.name == self.holder.name, t.c.token == self.holder.token)
                        .values(heartbeat_at=time.time())
                    ).rowcount
                failures = 0
            except StateError as exc:  # the store may come back before the lease runs out
                failures += 1
                _log.warning("lease %s: heartbeat not written (%s)", self.holder.name, exc)
                continue
            if renewed != 1:
                self.lost = f"the {self.holder.name} lease was taken over by another process"
                _log.error("%s", self.lost)
                return

    def release(self) -> None:
        """Give the lease back (idempotent); only our own row is deleted, never a successor's."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.heartbeat_s + 35)
        t = schema.leases
        try:
            with self.store.transaction() as tx:
                tx.connection.execute(t.delete().where(t.c.name == self.holder.name,
                                                       t.c.token == self.holder.token))
        except StateError as exc:
            _log.warning("lease %s not released (%s): the next run takes it over", self.holder.name, exc)


def acquire(
    store: Store,
    name: str,
    *,
    command: str | None = None,
    ttl_s: float = DEFAULT_TTL_S,
    heartbeat_s: float | None = None,
    host: str | None = None,
    pid: int | None = None,
) -> Lease:
    """Take lease `name` or raise `LeaseHeld` naming whoever holds it; start its heartbeat."""
    pid = os.getpid() if pid is None else pid
    now = time.time()
    me = Holder(name=name, token=secrets.token_hex(16), host=host or socket.gethostname(), pid=pid,
                pid_started=process_start(pid), started_at=now, heartbeat_at=now, command=command)
    with store.transaction() as tx:
        previous, why = try_take(tx.connection, me, ttl_s=ttl_s)
        if previous is not None and why is None:
            raise LeaseHeld(
                f"another `{name}` is running on this state store ({store.url}): {previous.describe(now)}; "
                f"wait for it to finish or stop it (a killed one is taken over: at once on its own host, "
                f"after {ttl_s:.0f} s without a heartbeat from another)",
                previous,
            )
        if previous is not None:
            tx.event("lease.taken_over", payload={"lease": name, "from": {"host": previous.host, "pid": previous.pid,
                                                                        "started_at": previous.started_at},
                                                  "why": why})
    lease = Lease(store, me, ttl_s=ttl_s, heartbeat_s=heartbeat_s or max(0.05, ttl_s / 6))
    lease._thread.start()
    return lease
