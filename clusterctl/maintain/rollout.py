"""A rolling maintenance: drain -> wait for jobs -> update -> validate -> short burn-in -> resume, in batches
that never take the fleet below its capacity floor.

- The update is the provision engine on the batch, with the stages the drift needs (firmware,
  bios, os), so flashing is journalled, exactly-once and resumable as in `provision`.
- Validation is `validate_nodes` (recorded as a validate run); the burn-in is the burn-in
  workload on each node alone. A node that fails any step stays drained, the failing check as
  its drain reason, and the rollout goes on with the others.
- Each batch is chosen from the scheduler's view at that moment: nodes down or drained for other
  reasons count against `--max-unavailable` and `--min-available`.
- Drains go through the node's scheduler (clusterctl.maintain.scheduler): Slurm drain/resume,
  Kubernetes cordon + Eviction API (PodDisruptionBudgets decide) + uncordon, or none.
- Every transition is a `maintain.<state>` event written before its side effect
  (clusterctl.maintain.ledger), so the same command after a kill -9 picks up the nodes it held.
- The rollout is a controller of the store (state/node_leases.py, job "maintain"): each node is leased
  before its drain and kept through update, validation and burn-in until it is resumed or held out, so
  a `provision` or `check` on the same store never touches a node mid-maintenance. A node another live
  controller holds is waited for (up to `--drain-timeout`), then skipped with the holder named. A
  rollout killed with SIGKILL leaves its leases; the next one on the same host takes them at once.
- Still one rollout per store (the store-wide "maintain" lease, state/leases.py): `--max-unavailable`
  and `--min-available` are one budget for the whole fleet, counted from the scheduler's view plus the
  nodes this rollout holds. Two rollouts each counting only their own nodes could together break it,
  so a second one is refused while one runs; sharing that count through the store, taken in the same
  transaction as each node's lease, would lift this.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterctl import log
from clusterctl.burnin.quarantine import Schedulers
from clusterctl.errors import ClusterctlError
from clusterctl.maintain import ledger
from clusterctl.maintain.drift import NodeDrift, observe, observe_stream
from clusterctl.maintain.floor import Floor, parse_count, parse_min_available
from clusterctl.maintain.scheduler import Scheduler
from clusterctl.provision.context import Tuning
from clusterctl.state import node_leases

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory, Node
    from clusterctl.state.store import Store

_log = log.get("maintain")
MAX_REASON = 200
OBSERVE_AT_ONCE = 64


@dataclass
class MaintainOptions:
    max_unavailable: str = "5%"
    min_available: Sequence[str] = ()
    drain_timeout_s: float = 3600.0
    force_after_s: float | None = None
    """Requeue the jobs still on a draining node after this long (None: never)."""
    canary: int = 0
    max_failures: str | None = None
    burnin_minutes: float = 5.0
    burnin_model: str = "transformer-big"
    poll_s: float = 5.0
    """Seconds between looks at the scheduler (drains, the floor, pause)."""
    concurrency: int = 64
    schedulers: Schedulers = field(default_factory=Schedulers)
    tuning: Tuning = field(default_factory=Tuning)


@dataclass
class Report:
    run_id: int | None
    nodes: int
    max_unavailable: int
    drifted: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    """Left drained on purpose (abort), with the reason."""
    stopped: str | None = None
    peak_unavailable: int = 0
    seconds: float = 0.0
    observe_s: float = 0.0
    """Of `seconds`, the time before the first nodes' drift was known (the rest is read beside the rollout)."""
    read_s: float = 0.0
    """The time to read the whole fleet's drift."""

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "nodes": self.nodes, "drifted": sorted(self.drifted),
                "resumed": sorted(self.resumed), "failed": dict(sorted(self.failed.items())),
                "skipped": dict(sorted(self.skipped.items())), "held": dict(sorted(self.held.items())),
                "stopped": self.stopped, "max_unavailable": self.max_unavailable,
                "peak_unavailable": self.peak_unavailable, "seconds": round(self.seconds, 2),
                "observe_s": round(self.observe_s, 2), "read_s": round(self.read_s, 2)}


class Stop(Exception):  # noqa: N818 - a signal inside the rollout, never raised out of it
    """An abort arrived between steps."""


class Rollout:
    def __init__(self, inventory: Inventory, store: Store, options: MaintainOptions,
                 *, announce: Callable[[str], None] = _log.info) -> None:
        self.inventory = inventory
        self.store = store
        self.options = options
        self.announce = announce
        self.scheduler = Scheduler(inventory, options.schedulers)
        partitions: dict[str, set[str]] = {}
        for node in inventory.nodes.values():
            if node.scheduler.slurm.partition:
                partitions.setdefault(node.scheduler.slurm.partition, set()).add(node.name)
        total = len(inventory.nodes)
        self.floor = Floor(total=total, max_unavailable=parse_count(options.max_unavailable, total,
                                                                      "--max-unavailable"),
                           partitions=partitions,
                           min_available=parse_min_available(options.min_available, partitions))
        self.run_id: int | None = None
        self.start_event = 0
        self.held: set[str] = set()
        self.report: Report | None = None
        self.reasons: dict[str, str] = {}
        self.claimed: set[str] = set()
        """Chosen under the floor, their drain not recorded yet: out of service for the floor already."""
        self.controller: node_leases.Controller | None = None

    # -- the plan ---------------------------------------------------------------------------------------

    async def plan(self, nodes: list[Node]) -> tuple[list[NodeDrift], dict[str, ledger.NodeState]]:
        previous = await asyncio.to_thread(ledger.last_states, self.store, [n.name for n in nodes])
        # Observing is BMC reads and one agent run per node: bounded on its own, whatever the update's width
        # (2,000 BMC sessions opened at once time out on a small controller, and those nodes go unread).
        drifts = await observe(self.inventory, nodes, concurrency=min(self.options.concurrency, OBSERVE_AT_ONCE))
        return drifts, previous

    # -- the run ----------------------------------------------------------------------------------------

    async def run(self, nodes: list[Node], *, args: Any = None) -> Report:
        from clusterctl.provision.engine import failure_threshold, interleave_racks
        from clusterctl.state import leases

        started = time.monotonic()
        threshold = failure_threshold(self.options.max_failures, len(nodes))
        lease = await asyncio.to_thread(leases.acquire, self.store, "maintain",
                                        command=f"maintain {self.inventory.path}")
        # The provision engines this rollout starts work under its controller, on the nodes it leased; the rack
        # limits they share live in the store, so they hold across this rollout and any other controller.
        self._widen_threads()
        report = Report(run_id=None, nodes=len(nodes), max_unavailable=self.floor.max_unavailable)
        self.report = report
        status = "failed"
        try:
            if isinstance(args, dict):  # the floor as this run counts it, for views of the run while it goes on
                args = {**args, "allowed_unavailable": self.floor.max_unavailable, "fleet": self.floor.total}
            self.controller = await asyncio.to_thread(
                node_leases.start, self.store, "maintain", command=f"maintain {self.inventory.path}",
                inventory=str(self.inventory.path), args=args)
            self.run_id = report.run_id = self.controller.run_id
            self.start_event = self.store.last_event_id()
            previous = await asyncio.to_thread(ledger.last_states, self.store, [n.name for n in nodes])
            flagged = {f.node for f in self.store.flags(quarantined_only=True)}
            for name, state in previous.items():
                if state.state == "failed" and name in flagged:  # released since: maintained again
                    report.skipped[name] = f"left drained by an earlier rollout: {state.reason}"
            carried = [n for n in nodes if n.name in previous and previous[n.name].state in ledger.HELD]
            carried_names = {n.name for n in carried}
            # Read in the order nodes start: the held ones, then spread over racks (a batch spread over racks
            # reboots within each rack's limits). Each node may start once its own drift is known.
            rest = [n for n in nodes if n.name not in carried_names and n.name not in report.skipped]
            reading = _Reading(self, carried + interleave_racks(rest), carried_names, report)
            try:
                if carried:
                    await reading.until(lambda: carried_names <= reading.by_name.keys())
                    self.announce(f"taking up {len(carried)} node(s) an earlier rollout held: "
                                  f"{', '.join(n.name for n in carried)}")
                    self.held.update(carried_names)
                    await self._batch(carried, reading.by_name)
                await self._roll(reading, threshold)
            finally:
                await reading.close()
            done = not report.failed and not report.skipped and report.stopped is None
            status = "succeeded" if done else "failed"  # as the exit code says
        except Stop:
            report.stopped = "aborted (clusterctl maintain abort)"
            status = "failed"
        except (KeyboardInterrupt, asyncio.CancelledError):
            status = "interrupted"
            raise
        finally:
            report.seconds = time.monotonic() - started
            try:
                if report.run_id is not None:
                    self.store.finish_run(report.run_id, status, report.as_dict())
            finally:
                if self.controller is not None:
                    await asyncio.to_thread(self.controller.close)
                await asyncio.to_thread(lease.release)
        return report

    async def _roll(self, reading: _Reading, threshold: int | None) -> None:
        """Start every drifted node as soon as its drift is known and the floor has room for it, the canaries
        first and alone; then wait for the nodes in flight."""
        report = reading.report
        queue = reading.queue
        running: set[asyncio.Task[None]] = set()
        canary = reading.canary  # the first --canary drifted nodes, as their drift arrives
        canaries_first = self.options.canary > 0
        try:
            while report.stopped is None:
                self._reap(running)
                if not queue or (canaries_first and len(canary) < self.options.canary and not reading.finished()):
                    if reading.finished():  # every drift read, every drifted node started
                        break
                    await reading.more(running)  # the next nodes' drift, or a node in flight back
                    continue
                await self._wait_while_paused()
                self._reap(running)
                in_canary = canaries_first and queue[0].name in canary
                batch, dropped = await self._next_batch([n for n in queue if n.name in canary] if in_canary
                                                        else list(queue), running)
                self._reap(running)
                started_now = {n.name for n in batch} | dropped
                queue[:] = [n for n in queue if n.name not in started_now]
                if batch and in_canary:  # the canaries go alone: the rollout waits for their verdict
                    await self._batch(batch, reading.by_name)
                elif batch:  # the rest start as soon as the floor lets them, beside the nodes in flight
                    self.claimed.update(n.name for n in batch)  # counted before their drain is recorded
                    running.add(asyncio.create_task(self._batch(batch, reading.by_name)))
                elif not dropped and not running:
                    break
                if canaries_first and (len(canary) >= self.options.canary or reading.finished()) and not any(
                        n.name in canary for n in queue):  # the canaries are through
                    failed = sorted(canary & set(report.failed))
                    if failed:
                        report.stopped = f"canary failed on {', '.join(failed)}"
                    canaries_first = False
                if threshold is not None and len(report.failed) >= threshold and report.stopped is None:
                    report.stopped = (f"{len(report.failed)} node(s) failed "
                                      f"(--max-failures {self.options.max_failures})")
            while running:  # no new node starts now; the ones in flight finish
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                self._reap(running)
        except Stop:  # the groups in flight see the abort too, and hold their nodes drained with the reason
            await self._settle(running, cancel=False)
            raise
        except BaseException:
            await self._settle(running, cancel=True)
            raise

    def _widen_threads(self) -> None:
        """Groups of nodes run side by side, each blocking a worker thread while it validates or records:
        asyncio's default pool (CPUs + 4 threads) would queue them behind each other."""
        from concurrent.futures import ThreadPoolExecutor

        width = min(64, self.floor.max_unavailable + 8)
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(width, thread_name_prefix="maintain"))

    async def _wait_while_paused(self) -> None:
        announced = False
        while True:
            action = await asyncio.to_thread(ledger.current_control, self.store, self.start_event)
            if action == "abort":
                raise Stop
            if action != "pause":
                return
            if not announced:
                self.announce("paused: no new node starts until `clusterctl maintain resume`")
                announced = True
            await asyncio.sleep(self.options.poll_s)

    def _check_abort(self) -> None:
        if ledger.current_control(self.store, self.start_event) == "abort":
            raise Stop

    @staticmethod
    def _reap(running: set[asyncio.Task[None]]) -> None:
        """Forget the finished node groups; an abort inside one (Stop) ends the rollout here."""
        for task in [t for t in running if t.done()]:
            running.discard(task)
            task.result()

    @staticmethod
    async def _settle(running: set[asyncio.Task[None]], *, cancel: bool) -> None:
        """Leaving early: the groups in flight are awaited (an abort: each holds its nodes drained, with the
        reason) or cancelled (an interrupt: the ledger already says which nodes are held, for the next run)."""
        pending = list(running)
        running.clear()
        if cancel:
            for task in pending:
                task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _next_batch(self, queue: list[Node], running: set[asyncio.Task[None]] | None = None,
                          ) -> tuple[list[Node], set[str]]:
        """The next nodes the floor lets go, waiting while it lets none (up to the drain timeout, counted while
        none of this rollout's nodes is in flight to free a place); and the queued nodes out of service for
        reasons of their own (drained by someone, down, quarantined), which are reported and left alone: they
        count against the floor, they are not this rollout's to take."""
        deadline = time.monotonic() + self.options.drain_timeout_s
        while True:
            if running:
                self._reap(running)
                deadline = time.monotonic() + self.options.drain_timeout_s
            states = await asyncio.to_thread(self.scheduler.states)
            down = self._unavailable(states)
            elsewhere = {n.name for n in queue if n.name in down and n.name not in self.held}
            if elsewhere:
                await asyncio.to_thread(self._skip_elsewhere, elsewhere, states)
                return [], elsewhere
            chosen = set(self.floor.choose([n.name for n in queue], down))
            if chosen:
                return [n for n in queue if n.name in chosen], set()
            if time.monotonic() > deadline:
                assert self.report is not None
                why = "; ".join(self.floor.broken(down)) or "no node fits under the floor"
                self.report.stopped = f"capacity floor: {why} for {self.options.drain_timeout_s:.0f} s"
                return [], set()
            await self._wait_while_paused()
            if running:  # a place frees when a node in flight comes back: look again then, or after a poll
                await asyncio.wait(running, timeout=self.options.poll_s, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(self.options.poll_s)

    def _skip_elsewhere(self, names: set[str], states: Any) -> None:
        assert self.report is not None
        why = self.scheduler.unavailable(states, names)
        flags = {f.node: f.reason for f in self.store.flags(quarantined_only=True)}
        for name in sorted(names):
            reason = f"out of service for another reason: {why.get(name) or flags.get(name) or 'unknown'}"
            self._record(name, "skipped", reason)
            self.report.skipped[name] = reason

    def out_of_service(self, states: Any) -> set[str]:
        """Out of service now: what the schedulers say, the nodes this rollout holds, and nodes flagged
        quarantined in the store (the only record for a node in no scheduler)."""
        flagged = {f.node for f in self.store.flags(quarantined_only=True) if f.node in self.inventory.nodes}
        return set(self.scheduler.unavailable(states, self.inventory.nodes)) | self.held | self.claimed | flagged

    def _unavailable(self, states: Any) -> set[str]:
        down = self.out_of_service(states)
        assert self.report is not None
        self.report.peak_unavailable = max(self.report.peak_unavailable, len(down))
        return down

    # -- one batch --------------------------------------------------------------------------------------

    def _record(self, node: str, state: str, reason: str | None = None, **payload: Any) -> None:
        ledger.record(self.store, node, state, run_id=self.run_id, reason=reason, **payload)

    async def _batch(self, batch: list[Node], drifts: dict[str, NodeDrift]) -> None:
        """Lease the batch (state/node_leases.py) and take each node through its path; nodes another live
        controller holds (a provision on them, a check round) follow when it lets them go."""
        holders = await asyncio.to_thread(self._claim, [n.name for n in batch])
        leased = [n for n in batch if n.name not in holders]
        parts = [self._path(leased, drifts)] if leased else []
        if holders:
            parts.append(self._after_holders([n for n in batch if n.name in holders], holders, drifts))
        _raise_first(await asyncio.gather(*parts, return_exceptions=True))

    async def _path(self, batch: list[Node], drifts: dict[str, NodeDrift]) -> None:
        """Leased nodes: drain, update, validate, burn-in, resume; their leases go when the path ends."""
        names = [n.name for n in batch]
        self.announce(f"batch of {len(batch)}: {', '.join(names)}")
        try:
            live = await self._drain(batch)
            live = await self._update(live, drifts)
            live = await self._validate(live)
            live = await self._burnin(live)
            await self._resume(live)
        except Stop:
            await asyncio.to_thread(self._hold_on_abort, names)
            await asyncio.to_thread(self._release, names)
            raise
        await asyncio.to_thread(self._release, names)

    async def _after_holders(self, waiting: list[Node], holders: dict[str, dict[str, Any]],
                             drifts: dict[str, NodeDrift]) -> None:
        """Nodes held elsewhere, asked for again each poll: each starts its path once leased; those still held
        after the drain timeout are skipped with their holder named (they count against the floor meanwhile)."""
        deadline = time.monotonic() + self.options.drain_timeout_s
        started: list[asyncio.Task[None]] = []
        try:
            while waiting and time.monotonic() <= deadline:
                await asyncio.to_thread(self._check_abort)
                await asyncio.sleep(self.options.poll_s)
                holders = await asyncio.to_thread(self._claim, [n.name for n in waiting])
                got = [n for n in waiting if n.name not in holders]
                if got:
                    started.append(asyncio.create_task(self._path(got, drifts)))
                    waiting = [n for n in waiting if n.name in holders]
            for node in waiting:
                reason = (f"{node_leases.describe(holders[node.name])} for --drain-timeout "
                          f"{self.options.drain_timeout_s:.0f} s")
                await asyncio.to_thread(self._record, node.name, "skipped", reason)
                assert self.report is not None
                self.report.skipped[node.name] = reason
                self.claimed.discard(node.name)
                self.held.discard(node.name)
        except Stop:  # the paths under way see the abort too and hold their nodes with the reason
            await asyncio.gather(*started, return_exceptions=True)
            raise
        except BaseException:  # interrupted: the ledger says which nodes are held, for the next run
            for task in started:
                task.cancel()
            await asyncio.gather(*started, return_exceptions=True)
            raise
        _raise_first(await asyncio.gather(*started, return_exceptions=True))

    def _claim(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Lease `names` in one transaction; {node: its holder} of those another live controller holds."""
        assert self.controller is not None
        with self.store.transaction() as tx:
            return self.controller.claim_or_holders(tx, names)  # a holder named "?": asked again next poll

    def _release(self, names: list[str]) -> None:
        """The nodes' path is over (resumed, held out or skipped): their leases go, for any controller."""
        assert self.controller is not None
        with self.store.transaction() as tx:
            self.controller.release_in(tx, names, finished=False)

    def _hold_on_abort(self, names: list[str]) -> None:
        assert self.report is not None
        for name in names:
            if name not in self.held:
                continue
            reason = f"clusterctl maintain aborted before: {self.reasons.get(name, 'its update')}"[:MAX_REASON]
            self._record(name, "aborted", reason)
            self.scheduler.keep_drained(name, reason)
            self.report.held[name] = reason

    async def _drain(self, batch: list[Node]) -> list[Node]:
        def drain_all() -> set[str]:
            refused = set()
            for node in batch:
                reason = f"clusterctl maintain: {self.reasons.get(node.name, 'update')}"[:MAX_REASON]
                self._record(node.name, "draining", reason, via=self.scheduler.via(node.name) or "direct")
                self.held.add(node.name)
                self.claimed.discard(node.name)
                try:
                    self.scheduler.drain(node.name, reason)
                except ClusterctlError as exc:  # the scheduler refused: the node is not ours to take
                    refused.add(node.name)
                    self.held.discard(node.name)
                    self._record(node.name, "skipped", f"not drained: {exc}")
                    assert self.report is not None
                    self.report.skipped[node.name] = f"not drained: {exc}"
            return refused

        refused = await asyncio.to_thread(drain_all)
        batch = [n for n in batch if n.name not in refused]
        waiting = {n.name for n in batch}
        began = time.monotonic()
        deadline = began + self.options.drain_timeout_s
        forced: set[str] = set()
        while True:
            states = await asyncio.to_thread(self.scheduler.states)
            self._unavailable(states)
            for name in sorted(waiting):
                try:
                    idle = await asyncio.to_thread(self.scheduler.idle, name, states)
                except ClusterctlError as exc:  # the scheduler did not answer this time: asked again next poll
                    _log.warning("%s: drain not confirmed yet: %s", name, exc)
                    idle = False
                if idle:
                    waiting.discard(name)
                    await asyncio.to_thread(self._record, name, "drained")
            if not waiting or time.monotonic() > deadline:
                break
            force = self.options.force_after_s
            if force is not None and time.monotonic() - began >= force:
                for name in sorted(waiting - forced):
                    forced.add(name)
                    await asyncio.to_thread(self._force, name)
            await asyncio.to_thread(self._check_abort)
            await asyncio.sleep(self.options.poll_s)
        for name in sorted(waiting):  # jobs that did not finish: reported, skipped, given back
            why = f"jobs still running after --drain-timeout {self.options.drain_timeout_s:.0f} s"
            await asyncio.to_thread(self._give_back, name, "skipped", why)
        return [n for n in batch if n.name not in waiting]

    def _force(self, name: str) -> None:
        """--force-after: the node's jobs are requeued, and that is an event of its own."""
        self._record(name, "forcing", f"jobs still running after --force-after {self.options.force_after_s:.0f} s")
        error: str | None
        try:
            jobs = self.scheduler.force(name)
        except ClusterctlError as exc:
            _log.error("%s: jobs not requeued: %s", name, exc)
            jobs, error = [], str(exc)
        else:
            error = None
        self._record(name, "draining", "jobs requeued" if not error else f"requeue failed: {error}",
                     requeued=jobs)

    def _give_back(self, name: str, state: str, reason: str | None = None) -> None:
        self._record(name, "resuming", reason)
        try:
            self.scheduler.resume(name)
        except ClusterctlError as exc:  # still drained: say so, with why
            self._fail(name, f"resume refused: {exc}")
            return
        # Recorded before the floor lets the place go: the events never show more nodes out than allowed.
        self._record(name, state, reason)
        self.held.discard(name)
        assert self.report is not None
        if state == "skipped":
            self.report.skipped[name] = reason or ""
        else:
            self.report.resumed.append(name)

    def _fail(self, name: str, reason: str) -> None:
        """The node stays drained (or out of service), its failing check as the reason."""
        from clusterctl.burnin import quarantine as q

        reason = " ".join(reason.split())
        self._record(name, "failed", reason)
        assert self.report is not None
        self.report.failed[name] = reason
        # Slurm: drained with the reason; Kubernetes: cordoned and tainted; no scheduler: the store's flag.
        # `clusterctl burnin release NODE` lets it back, the same way.
        via = self.scheduler.via(name) or q.NONE
        actions = q.quarantine({name: reason}, via=via, store=self.store, source="clusterctl maintain",
                               schedulers=self.scheduler.reach, run_id=self.run_id)
        self.held.discard(name)  # only now: until its quarantine is recorded, the floor counts it as held
        if not actions[0].ok:
            _log.error("%s: failed and could not be kept drained: %s", name, actions[0].detail)

    async def _update(self, batch: list[Node], drifts: dict[str, NodeDrift]) -> list[Node]:
        from clusterctl.provision.engine import Engine, Options
        from clusterctl.provision.stages import STAGES

        if not batch:
            return []
        await asyncio.to_thread(self._check_abort)
        needed = {"firmware", "bios"} | {s for n in batch for s in drifts[n.name].stages}
        stages = [s for s in STAGES if s in needed]
        # Firmware and BIOS are read again on every node (their journal finishes an update a kill interrupted);
        # the playbooks run only where the software drifted.
        skip = {n.name: frozenset({"os"}) for n in batch if "os" not in drifts[n.name].stages}
        for node in batch:
            await asyncio.to_thread(self._record, node.name, "updating", None,
                                    stages=[s for s in stages if s not in skip.get(node.name, ())])
        tuning = self.options.tuning
        if "os" in stages:
            from dataclasses import replace

            tuning = replace(tuning, os_reapply=True)
        # The whole batch at once: its nodes are out of service already, and a node waiting for an engine slot
        # is capacity lost. BMC requests stay bounded by the engine's limits, reboots by the power gate.
        engine = Engine(self.inventory, self.store,
                        Options(stages=stages, concurrency=max(self.options.concurrency, len(batch)), tuning=tuning,
                                skip=skip))
        summary = await engine.run(batch, args={"maintain_run": self.run_id, "stages": stages},
                                   controller=self.controller)
        ok = []
        for node in batch:
            if node.name in summary.failed:
                stage, reason = summary.failed[node.name]
                await asyncio.to_thread(self._fail, node.name, f"{stage}: {reason}")
            elif node.name in summary.ready:
                await asyncio.to_thread(self._record, node.name, "updated")
                ok.append(node)
            else:  # pending: the engine stopped before it (its lease was lost)
                await asyncio.to_thread(self._fail, node.name, f"update not finished: {summary.stopped}")
        return ok

    async def _validate(self, batch: list[Node]) -> list[Node]:
        from clusterctl.validate.evaluate import NODE_SIDE
        from clusterctl.validate.run import Request, record, validate_nodes

        if not batch:
            return []
        await asyncio.to_thread(self._check_abort)
        for node in batch:
            await asyncio.to_thread(self._record, node.name, "validating")
        request = Request(categories=NODE_SIDE, parallel=min(32, len(batch)))
        report = await asyncio.to_thread(validate_nodes, self.inventory, batch, request)
        await asyncio.to_thread(record, self.store, report, inventory=str(self.inventory.path),
                                args={"maintain_run": self.run_id})
        failing = {v.node: v for v in report.verdicts if v.status == "fail"}
        ok = []
        for node in batch:
            verdict = failing.get(node.name)
            if verdict is None:
                ok.append(node)
                continue
            problems = "; ".join(f"{c.name}: {c.detail}" for c in verdict.problems() if c.status == "fail")
            await asyncio.to_thread(self._fail, node.name, f"validate: {problems}")
        return ok

    async def _burnin(self, batch: list[Node]) -> list[Node]:
        from clusterctl.maintain.burnin import short_burnin

        if not batch or self.options.burnin_minutes <= 0:
            return batch
        await asyncio.to_thread(self._check_abort)

        async def one(node: Node) -> list[str]:
            await asyncio.to_thread(self._record, node.name, "burnin", None, minutes=self.options.burnin_minutes)
            try:
                return await asyncio.to_thread(short_burnin, self.store, self.inventory, node.name,
                                               minutes=self.options.burnin_minutes, model=self.options.burnin_model)
            except Exception as exc:  # noqa: BLE001 - one node's broken burn-in must not stop the others
                return [f"{type(exc).__name__}: {exc}"]

        results = await asyncio.gather(*(one(n) for n in batch))
        ok = []
        for node, reasons in zip(batch, results, strict=True):
            if reasons:
                await asyncio.to_thread(self._fail, node.name, "burn-in: " + "; ".join(reasons))
            else:
                ok.append(node)
        return ok

    async def _resume(self, batch: list[Node]) -> None:
        for node in batch:
            await asyncio.to_thread(self._give_back, node.name, "resumed")


def _raise_first(results: list[Any]) -> None:
    """After every part of a batch has settled: the first exception one of them ended with, if any."""
    for result in results:
        if isinstance(result, BaseException):
            raise result


class _Reading:
    """The drift of the rollout's nodes, read beside it: a drifted node joins the queue as soon as its own
    drift is known, in the order given; held nodes (carried from an earlier rollout) are only recorded."""

    def __init__(self, rollout: Rollout, order: list[Node], carried: set[str], report: Report) -> None:
        self.rollout = rollout
        self.report = report
        self.by_name: dict[str, NodeDrift] = {}
        self.queue: list[Node] = []
        self.canary: set[str] = set()
        self._nodes = {n.name: n for n in order}
        self._carried = carried
        self._arrived = asyncio.Event()
        self._began = time.monotonic()
        self._task = asyncio.create_task(self._read(order))

    async def _read(self, order: list[Node]) -> None:
        at_once = min(self.rollout.options.concurrency, OBSERVE_AT_ONCE)
        async for drifts in observe_stream(self.rollout.inventory, order, concurrency=at_once):
            self._take(drifts)
        self.report.read_s = time.monotonic() - self._began

    def _take(self, drifts: list[NodeDrift]) -> None:
        report, wanted = self.report, self.rollout.options.canary
        if not self.by_name:
            report.observe_s = time.monotonic() - self._began
        for d in drifts:
            self.by_name[d.node] = d
            if d.node in self._carried:
                self.rollout.reasons[d.node] = d.describe()
                report.drifted.append(d.node)
                continue
            unread = {k: v for k, v in d.errors.items() if k in ("firmware", "bios")}
            if unread and not d.drifted:
                report.skipped[d.node] = "; ".join(f"{k} not read: {v}" for k, v in unread.items())
            elif d.drifted:
                self.rollout.reasons[d.node] = d.describe()
                report.drifted.append(d.node)
                self.queue.append(self._nodes[d.node])
                if len(self.canary) < wanted:
                    self.canary.add(d.node)
        self._arrived.set()

    def finished(self) -> bool:
        """Every drift read (a read that broke raises here)."""
        if self._task.done():
            self._task.result()
            return True
        return False

    async def more(self, running: set[asyncio.Task[None]]) -> None:
        """Until more drift arrives, the read ends or one of the node groups in flight finishes."""
        self._arrived.clear()
        waiter = asyncio.ensure_future(self._arrived.wait())
        try:
            await asyncio.wait({waiter, self._task, *running}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        self.finished()

    async def until(self, ready: Callable[[], bool]) -> None:
        while not ready() and not self.finished():
            await self.more(set())

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
