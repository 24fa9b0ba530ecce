"""The provisioning engine: every selected node through the selected stages, crash-safe and bounded.

- One asyncio task per node, at most `concurrency` at once; a node's stages run in order over one
  BMC session. Reboots go through the power gate (per-rack budget and reboot limit).
- Failures are data: a failing node gets its stage marked failed with the reason and the others go
  on. Only transient errors (BMC unreachable, 429/502/503/504) are retried, a whole stage at a time,
  because a stage starts by observing and so is safe to repeat.
- `canary` nodes go first; any failure among them stops the run. `max_failures` (N or P%) stops
  it too: nodes in flight finish their current stage, the rest stay pending.
- Everything goes to the store through the journal before and after each side effect, so the same
  command after a `kill -9` resumes where the BMCs are, not where the store guessed.
- Several controllers may share the store: each takes a node (a lease, state/node_leases.py) just
  before working on it and gives it back when done, so two runs on the same or overlapping nodes
  split them; nodes another live controller holds are asked for again until it finishes them (or
  dies, and this one takes them over). Reboot slots and rack budgets are shared in the store too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterctl import log
from clusterctl.counts import count_or_share
from clusterctl.errors import BMCRequestFailed, BMCUnreachable, ClusterctlError, StateError
from clusterctl.provision.batched import Batched
from clusterctl.provision.context import NodeContext, StageResult, Tuning
from clusterctl.provision.images import ImageCheck
from clusterctl.provision.journal import Journal
from clusterctl.provision.places import Places
from clusterctl.provision.power import PowerGate, SharedSlots
from clusterctl.provision.stages import READY, STAGES
from clusterctl.state import node_leases
from clusterctl.state.node_leases import Claim

if TYPE_CHECKING:
    import httpx

    from clusterctl.inventory import Inventory, Node
    from clusterctl.redfish import BMCTarget
    from clusterctl.state.store import Store

_log = log.get("provision")
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
DEFAULT_STAGES = ("discover", "firmware", "bios", "boot", "os", "validate")


class ProvisionOptionError(ClusterctlError):
    """A provisioning option cannot be used as given."""


@dataclass
class Options:
    stages: Sequence[str] = DEFAULT_STAGES
    concurrency: int = 64
    """Nodes worked on at once; a node waiting for a reboot slot is not counted (places.py)."""
    canary: int = 0
    max_failures: str | None = None
    max_rebooting_total: int | None = None
    per_bmc_requests: int = 4
    global_requests: int = 256
    stage_deadline_s: float = 4 * 3600.0
    tuning: Tuning = field(default_factory=Tuning)
    skip: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """node -> stages it does not need this run (`maintain`: a node with only a firmware change keeps its
    playbooks; one run still serves both kinds of node, so its reboots share one power gate)."""


def parse_stages(text: str | None) -> list[str]:
    if not text:
        return list(DEFAULT_STAGES)
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    known_stages(wanted)
    return [s for s in STAGES if s in wanted]  # always in pipeline order


def known_stages(wanted: Sequence[str]) -> None:
    """Refuse a stage the pipeline does not have, before any node is touched."""
    unknown = [s for s in wanted if s not in STAGES]
    if unknown or not wanted:
        raise ProvisionOptionError(f"--stages: unknown stage(s) {', '.join(unknown) or '(none given)'}; "
                                   f"choose from {', '.join(STAGES)}")


def failure_threshold(text: str | None, nodes: int) -> int | None:
    """`--max-failures 5` or `10%` -> the failure count that stops the run (None: never)."""
    if text is None or not text.strip():
        return None
    try:
        return count_or_share(text, nodes, rounding="up")
    except ValueError:
        raise ProvisionOptionError(f"--max-failures {text!r}: expected a count (5) or a percentage (10%)") from None


@dataclass
class Summary:
    run_id: int | None
    nodes: int
    ready: list[str] = field(default_factory=list)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)
    skipped: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    """Nodes another controller finished while this one ran."""
    stopped: str | None = None
    seconds: float = 0.0
    commits: int = 0
    peaks: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "nodes": self.nodes,
            "ready": len(self.ready),
            "failed": [{"node": n, "stage": s, "reason": r} for n, (s, r) in sorted(self.failed.items())],
            "skipped": {stage: {reason: sorted(nodes) for reason, nodes in by.items()}
                        for stage, by in self.skipped.items()},
            "pending": sorted(self.pending),
            "elsewhere": len(self.elsewhere),
            "stopped": self.stopped,
            "seconds": round(self.seconds, 2),
            "racks": self.peaks,
        }


class Tracker:
    """In-memory counts per stage and status for live progress (the store has the same, durably)."""

    def __init__(self, stages: Sequence[str], nodes: int) -> None:
        self.stages = [*stages, READY]
        self.total = nodes
        self.status: dict[tuple[str, str], str] = {}
        self.counts: dict[str, dict[str, int]] = {s: {"pending": nodes} for s in self.stages}
        self.failing: list[tuple[str, str, str]] = []
        self.started = time.monotonic()
        self.listeners: list[Callable[[], None]] = []

    def update(self, node: str, stage: str, status: str, reason: str | None = None) -> None:
        old = self.status.get((node, stage), "pending")
        self.status[(node, stage)] = status
        counts = self.counts.setdefault(stage, {})
        counts[old] = counts.get(old, 0) - 1
        counts[status] = counts.get(status, 0) + 1
        if status == "failed":
            self.failing.append((node, stage, reason or ""))

    @property
    def ready(self) -> int:
        return self.counts[READY].get("done", 0)

    @property
    def failed(self) -> int:
        return len(self.failing)

    def throughput(self) -> float:
        """Nodes finished (ready or failed) per second."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return (self.ready + self.failed) / elapsed

    def eta_s(self) -> float | None:
        rate = self.throughput()
        left = self.total - self.ready - self.failed
        return left / rate if rate > 0 else None


class Engine:
    def __init__(
        self,
        inventory: Inventory,
        store: Store,
        options: Options,
        *,
        transport_for: Callable[[BMCTarget], httpx.AsyncBaseTransport | None] | None = None,
        tracker: Tracker | None = None,
    ) -> None:
        """Several engines may run at once, in one process (`maintain` starts each node as the floor allows)
        or in several: each registers its own controller, and the rack limits are shared through the store."""
        known_stages(options.stages)
        self.inventory = inventory
        self.store = store
        self.options = options
        self.transport_for = transport_for
        self.tracker = tracker
        self.stop_reason: str | None = None
        self._threshold: int | None = None
        self._failures = 0
        self._controller: node_leases.Controller | None = None

    # -- the run ---------------------------------------------------------------------------------------

    async def run(self, nodes: list[Node], *, args: Any = None,
                  controller: node_leases.Controller | None = None) -> Summary:
        """Provision those of `nodes` no other controller of the store works on or finishes meanwhile.

        `controller`: the caller's (`maintain`), which already holds the nodes and keeps them when this run
        ends; the run is then recorded as one under the caller's (args `under_run`), so it counts as the
        caller's while that controller lives and is closed with it when it is gone."""
        opts = self.options
        started = time.monotonic()
        self._threshold = failure_threshold(opts.max_failures, len(nodes))
        tracker = self.tracker or Tracker(opts.stages, len(nodes))
        self.tracker = tracker
        if controller is not None:
            self._controller = controller
            run_id = await asyncio.to_thread(self.store.start_run, "provision", inventory=str(self.inventory.path),
                                             args={**(args or {}), "under_run": controller.run_id})
            return await self._run_controlled(nodes, controller, started, tracker, run_id=run_id)
        self._controller = await asyncio.to_thread(
            node_leases.start, self.store, "provision", command=f"provision {self.inventory.path}",
            inventory=str(self.inventory.path), args=args)
        try:
            return await self._run_controlled(nodes, self._controller, started, tracker)
        finally:
            await asyncio.to_thread(self._controller.close)

    async def _run_controlled(self, nodes: list[Node], controller: node_leases.Controller, started: float,
                              tracker: Tracker, *, run_id: int | None = None) -> Summary:
        from clusterctl.redfish import Limits, RetryPolicy
        from clusterctl.redfish.cadence import Durations
        from clusterctl.redfish.target import targets_for

        opts = self.options
        names = [n.name for n in nodes]
        lent = run_id is not None  # the caller's controller: its nodes stay held when this run ends
        run_id = run_id if lent else controller.run_id
        assert run_id is not None
        summary = Summary(run_id=run_id, nodes=len(nodes))
        shared = SharedSlots(controller, {n: node.rack for n, node in self.inventory.nodes.items()},
                             hold_s=opts.tuning.reboot_deadline_s + controller.ttl_s,
                             poll_s=min(max(opts.tuning.poll_s * 4, 0.2), 2.0))
        gate = PowerGate(self.inventory, max_rebooting_total=opts.max_rebooting_total, shared=shared)

        def take(batch: list[str]) -> list[Claim]:
            found = controller.claim(batch)
            return [found[n] for n in batch]

        claim: Batched[str, Claim] = Batched(take)
        limits = Limits(per_bmc=opts.per_bmc_requests, global_requests=opts.global_requests)
        retry = RetryPolicy(max_wait=min(30.0, max(opts.tuning.poll_s, 0.05) * 6),
                            max_total=max(opts.tuning.request_timeout_s * 4, 1.0))
        images = ImageCheck(self.inventory)
        durations = Durations(opts.tuning.poll_s)
        targets = targets_for(self.inventory, nodes)
        status = "failed"
        try:
            async with Journal(self.store, run_id) as journal:
                await asyncio.to_thread(journal.load_open_intents, names, opts.stages)
                ask_again = Ticker(min(controller.heartbeat_s, 2.0))
                slots = asyncio.Semaphore(max(1, opts.concurrency))
                racks = len({n.rack for n in nodes})
                warmup = max(16, 2 * racks)
                warm = asyncio.Semaphore(warmup)
                discovering = asyncio.Semaphore(min(warmup, limits.global_requests))
                per_run: dict[str, Any] = {}

                def context(node: Node) -> NodeContext:
                    target = targets[node.name]
                    return NodeContext(
                        node=node, target=target, inventory=self.inventory, journal=journal, gate=gate,
                        tuning=opts.tuning, limits=limits, retry=retry, images=images,
                        durations=durations, per_run=per_run,
                        transport=self.transport_for(target) if self.transport_for else None,
                    )

                async def one(node: Node) -> None:
                    """Take `node` once it has its places (places.py) and work on it, unless another has it."""
                    places = Places(slots, warm, discovering)
                    try:
                        await places.enter()
                        got = await ask(node)
                        while got is Claim.busy:
                            # Held by a live controller: ask again, holding no place, until it finishes the
                            # node or is gone; the waiting nodes all ask on the same tick, in one transaction.
                            places.leave()
                            await ask_again.wait()
                            got = await ask(node)
                            if got in (Claim.mine, Claim.taken_over):
                                await places.enter()
                        if got is None:
                            return
                        if got is Claim.finished:
                            summary.elsewhere.append(node.name)
                            return
                        if node.name in controller.carried:
                            controller.carried.discard(node.name)
                            gate.carry(node)
                        try:
                            await work(node, got, places)
                        finally:
                            gate.drop(node)
                            done = node.name in summary.ready or node.name in summary.failed
                            if not lent:
                                await journal.write(
                                    lambda tx: controller.release_in(tx, [node.name], finished=done))
                    finally:
                        places.leave()

                async def ask(node: Node) -> Claim | None:
                    """Claim `node` (None: the run is stopping, nothing is taken)."""
                    if self.stop_reason is None and controller.lost is not None:
                        self.stop_reason = controller.lost
                    if self.stop_reason is not None:
                        return None
                    return await claim(node.name)

                async def work(node: Node, got: Claim, places: Places) -> None:
                    if got is Claim.taken_over:  # what its last holder did is newer than this run's start
                        await asyncio.to_thread(journal.reload, [node.name], opts.stages)
                    await asyncio.gather(*(journal.stage(node.name, stage, "pending")
                                           for stage in [*opts.stages, READY]))
                    ctx = context(node)
                    ctx.places = places
                    await self._pipeline(ctx, summary)

                canary, rest = nodes[: opts.canary], interleave_racks(nodes[opts.canary :])
                limits.rank(n.name for n in (*canary, *rest))  # the nodes started first finish first
                if canary:
                    await _all(one(n) for n in canary)
                    if summary.failed and self.stop_reason is None:
                        self.stop_reason = f"canary failed on {', '.join(sorted(summary.failed))}"
                if self.stop_reason is None:
                    await _all(one(n) for n in rest)
                await shared.flush()
                elsewhere = set(summary.elsewhere)
                summary.pending = [n for n in names
                                   if n not in summary.ready and n not in summary.failed and n not in elsewhere]
                summary.stopped = self.stop_reason
                summary.commits = journal.commits
                status = "succeeded" if not summary.failed and not summary.pending else "failed"
        except (KeyboardInterrupt, asyncio.CancelledError):
            status = "interrupted"
            raise
        finally:
            images.close()
            summary.seconds = time.monotonic() - started
            summary.peaks = {
                r.name: {"peak_rebooting": r.peak_rebooting, "peak_estimated_w": round(r.peak_w, 1),
                         "max_rebooting": r.max_rebooting, "budget_w": r.budget_w or 0}
                for r in gate.racks.values() if r.peak_rebooting
            }
            self.store.finish_run(run_id, status, summary.as_dict())
        return summary

    async def _pipeline(self, ctx: NodeContext, summary: Summary) -> None:
        skipped: list[str] = []
        try:
            for stage in self.options.stages:
                if self._controller is not None and self._controller.lost and self.stop_reason is None:
                    self.stop_reason = self._controller.lost
                if self.stop_reason is not None:
                    return  # stays pending: the run was stopped between this node's stages
                if stage in self.options.skip.get(ctx.name, ()):
                    await self._set(ctx, stage, "skipped", reason="not needed by this change")
                    continue
                if stage == "discover" and ctx.places is not None:
                    async with ctx.places.discovering:  # its own group: not behind other nodes' image work
                        result = await self._stage(ctx, stage, summary)
                else:
                    await ctx.warm_up()
                    result = await self._stage(ctx, stage, summary)
                if result is None:
                    return
                if result.status == "skipped":
                    summary.skipped.setdefault(stage, {}).setdefault(result.reason or "", []).append(ctx.name)
                    skipped.append(f"{stage}: {result.reason}")
            reason = ("skipped " + "; ".join(skipped)) if skipped else None
            await self._set(ctx, READY, "done", reason=reason)
            summary.ready.append(ctx.name)
        finally:
            await ctx.close()

    async def _set(self, ctx: NodeContext, stage: str, status: str, *, reason: str | None = None,
                   detail: Any = None) -> None:
        await ctx.journal.stage(ctx.name, stage, status, reason=reason, detail=detail)
        if self.tracker is not None:
            self.tracker.update(ctx.name, stage, status, reason)

    async def _stage(self, ctx: NodeContext, stage: str, summary: Summary) -> StageResult | None:
        """Run one stage to done/skipped (returned) or failed (None), retrying transient errors."""
        ctx.stage = stage
        await self._set(ctx, stage, "running")
        attempts = max(1, self.options.tuning.stage_attempts)
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(self.options.stage_deadline_s):
                    result = await STAGES[stage].run(ctx)
            except StateError:
                raise
            except (BMCUnreachable, BMCRequestFailed) as exc:
                transient = isinstance(exc, BMCUnreachable) or exc.status in TRANSIENT_STATUS
                if transient and attempt < attempts:
                    await ctx.journal.event("stage.retry", node=ctx.name, stage=stage,
                                            payload={"attempt": attempt, "error": reason_of(exc, ctx)})
                    await ctx.drop_session()
                    await asyncio.sleep(self.options.tuning.stage_retry_wait_s * attempt)
                    continue
                return await self._fail(ctx, stage, reason_of(exc, ctx), summary)
            except TimeoutError:
                return await self._fail(
                    ctx, stage, f"stage did not finish within {self.options.stage_deadline_s:.0f} s", summary
                )
            except ClusterctlError as exc:
                return await self._fail(ctx, stage, reason_of(exc, ctx), summary)
            except Exception as exc:  # noqa: BLE001 - one node's surprise must not stop the fleet
                _log.debug("%s: %s: unexpected %s", ctx.name, stage, type(exc).__name__, exc_info=True)
                return await self._fail(ctx, stage, f"{type(exc).__name__}: {exc}", summary)
            await self._set(ctx, stage, result.status, reason=result.reason, detail=result.detail)
            return result
        raise AssertionError("unreachable: the last attempt returns")

    async def _fail(self, ctx: NodeContext, stage: str, reason: str, summary: Summary) -> None:
        await ctx.journal.close_open(ctx.name, stage, "failed", error=reason)
        await self._set(ctx, stage, "failed", reason=reason)
        summary.failed[ctx.name] = (stage, reason)
        self._failures += 1
        if self._threshold is not None and self._failures >= self._threshold and self.stop_reason is None:
            self.stop_reason = f"{self._failures} node(s) failed (--max-failures {self.options.max_failures})"
        return None


class Ticker:
    """A shared beat: every task that waits within one period wakes at the same moment."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._beat: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        if self._beat is None or self._beat.done():
            loop = asyncio.get_running_loop()
            beat: asyncio.Future[None] = loop.create_future()
            loop.call_later(self.period_s, lambda: beat.done() or beat.set_result(None))
            self._beat = beat
        await asyncio.shield(self._beat)


def interleave_racks(nodes: list[Node]) -> list[Node]:
    """First node of every rack, then the second of every rack...: each rack can start rebooting early."""
    by_rack: dict[str, list[Node]] = {}
    for node in nodes:
        by_rack.setdefault(node.rack, []).append(node)
    longest = max((len(v) for v in by_rack.values()), default=0)
    return [group[i] for i in range(longest) for group in by_rack.values() if i < len(group)]


def reason_of(exc: BaseException, ctx: NodeContext) -> str:
    text = str(exc) or type(exc).__name__
    prefix = f"{ctx.name}: "
    return text[len(prefix):] if text.startswith(prefix) else text


async def _all(coros: Any) -> None:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise

