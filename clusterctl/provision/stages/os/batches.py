"""The `os` stage's Ansible work: one ansible-runner run per batch of nodes, outcomes back per node.

Nodes reach `os` one by one as their reboots finish, rack by rack. One ansible-playbook per node
would cost a process start, an inventory parse and a playbook compile per node (seconds of
controller CPU each, times 2,000); one run for many hosts pays them once and lets Ansible's forks
do the fan-out. So a node reaching `os` joins the open batch; a batch starts `window_s` after its
first node joined, or at once when it holds `max_batch` nodes, and at most `parallel` runs go at
a time (each with at most `forks` SSH connections), so batches grow while the runs are busy.

Crash safety: every node of a batch gets an `os.intent` (key `playbook`) committed before
ansible-playbook starts and an `os.outcome` (ok / failed / unreachable, with the failing task and
its message, from ansible-runner's event stream) after it ends. The stage skips nodes whose newest
outcome is `ok` for the same fingerprint, so after a `kill -9` the same command runs the playbook
again only on the nodes without an outcome (Ansible is idempotent, so a half-done host is safe to
run again) and on those that failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterctl import log

if TYPE_CHECKING:
    from clusterctl.inventory import Node
    from clusterctl.provision.journal import Journal
    from clusterctl.provision.stages.os.ansible import HostOutcome

_log = log.get("provision.os")
STAGE = "os"
KEY = "playbook"

Runner = Callable[[list["Node"], threading.Event], Mapping[str, "HostOutcome"]]
"""Runs the playbook on these nodes (in a worker thread); stops early when the event is set."""


@dataclass(frozen=True)
class BatchPolicy:
    window_s: float = 5.0
    max_batch: int = 200
    forks: int = 50
    parallel: int = 2


@dataclass
class _Batch:
    number: int
    members: list[tuple[Node, str, asyncio.Future[HostOutcome]]] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)


class Batches:
    """Collects the nodes that reach `os` during one engine run into ansible-runner runs."""

    def __init__(self, journal: Journal, runner: Runner, policy: BatchPolicy, stage: str = STAGE) -> None:
        self.journal = journal
        self.stage = stage
        self.runner = runner
        self.policy = policy
        self.sizes: list[int] = []
        """Nodes per run started, in order (what the benchmark and tests report)."""
        self._waiting: list[tuple[Node, str, asyncio.Future[HostOutcome]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._slots = asyncio.Semaphore(max(1, policy.parallel))
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[int, _Batch] = {}

    async def submit(self, node: Node, fingerprint: str) -> HostOutcome:
        """Join the open batch and wait for this node's outcome (recorded in the journal by then)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[HostOutcome] = loop.create_future()
        entry = (node, fingerprint, future)
        self._waiting.append(entry)
        if len(self._waiting) >= self.policy.max_batch:
            self._launch()
        elif self._timer is None:
            self._timer = loop.call_later(max(0.0, self.policy.window_s), self._launch)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self._abandon(entry)
            raise

    def _abandon(self, entry: tuple[Node, str, asyncio.Future[HostOutcome]]) -> None:
        """A node's task was cancelled: leave the queue, or stop its run once no member is waiting."""
        if entry in self._waiting:
            self._waiting.remove(entry)
            return
        entry[2].cancel()
        for batch in self._running.values():
            if entry in batch.members and all(f.cancelled() or f.done() for _, _, f in batch.members):
                batch.cancel.set()

    def _launch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = asyncio.ensure_future(self._run_next())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_next(self) -> None:
        async with self._slots:
            members = [m for m in self._waiting[: self.policy.max_batch] if not m[2].done()]
            del self._waiting[: self.policy.max_batch]
            if self._waiting and self._timer is None:  # more than one batch was waiting
                self._timer = asyncio.get_running_loop().call_later(0, self._launch)
            if not members:
                return
            batch = _Batch(len(self.sizes) + 1, members)
            self.sizes.append(len(members))
            self._running[batch.number] = batch
            try:
                outcomes = await self._run(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to every member, never lost
                for _, _, future in members:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            finally:
                del self._running[batch.number]
            for node, _, future in members:
                if not future.done():
                    future.set_result(outcomes[node.name])

    async def _run(self, batch: _Batch) -> dict[str, HostOutcome]:
        from clusterctl.provision.stages.os.ansible import HostOutcome

        names = [node.name for node, _, _ in batch.members]
        await asyncio.gather(*(
            self.journal.intent(node.name, self.stage, KEY, {"fingerprint": fp, "batch": batch.number,
                                                        "hosts": len(names)})
            for node, fp, _ in batch.members
        ))
        await self.journal.event(f"{self.stage}.batch", stage=self.stage,
                                 payload={"batch": batch.number, "hosts": names,
                                          "forks": min(self.policy.forks, len(names))})
        _log.info("%s batch %d: playbook on %d node(s)", self.stage, batch.number, len(names))
        try:
            found = await asyncio.to_thread(self.runner, [node for node, _, _ in batch.members], batch.cancel)
        except Exception as exc:  # noqa: BLE001 - ansible missing, playbook absent: every member fails
            reason = str(exc) or type(exc).__name__
            found = {name: HostOutcome(name, "failed", message=reason) for name in names}
        outcomes = {name: found.get(name) or HostOutcome(name, "failed", message="no result") for name in names}
        await asyncio.gather(*(
            self.journal.outcome(node.name, self.stage, KEY, outcomes[node.name].status, fingerprint=fp,
                                 batch=batch.number, **_details(outcomes[node.name]))
            for node, fp, _ in batch.members
        ))
        return outcomes


def _details(outcome: HostOutcome) -> dict[str, Any]:
    keys = ("tasks_ok", "changed", "failed_task", "failed_role", "message")
    return {k: getattr(outcome, k) for k in keys if getattr(outcome, k) not in (None, "")}


def playbook_digest(playbook: Path) -> str:
    """sha256 over every file of the playbook's directory (names and contents): a changed role re-runs."""
    digest = hashlib.sha256()
    root = playbook.parent
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(playbook.name.encode())
    return digest.hexdigest()
