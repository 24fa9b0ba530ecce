"""Stage `os`: configure the installed OS with playbooks/site.yml (ansible-runner), per host.

Needs SSH: a node whose SSH port does not answer is reported skipped with the reason (the lab
has no SSH servers yet), never passed. After a `boot` stage that installed the OS this run, a
silent SSH port is a failure instead: the install was supposed to bring it up.

A node whose newest outcome is `ok` for the same playbooks and host variables (a fingerprint of
both) is done without a run, unless `Tuning.os_reapply` (`--reapply`: a host changed by hand
since is put back). The nodes that do need a run share ansible-runner runs (`batches`); the reboots
their playbook makes are admitted by the run's power gate (`gate`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterctl.errors import NodeCheckFailed
from clusterctl.provision.context import StageResult, done, skipped
from clusterctl.provision.stages.os.batches import KEY, STAGE, Batches, BatchPolicy, playbook_digest
from clusterctl.provision.stages.os.gate import RebootGate
from clusterctl.ssh.probe import ssh_problem
from clusterctl.state.private import state_dir

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory, Node
    from clusterctl.provision.context import NodeContext
    from clusterctl.provision.stages.os.ansible import HostOutcome


async def plan(ctx: NodeContext) -> dict[str, Any]:
    down = await ssh_problem(ctx.node, ctx.tuning.ssh_probe_timeout_s)
    return {"skip": f"SSH not reachable: {down}"} if down else {"change": {"playbook": "playbooks/site.yml"}}


async def run(ctx: NodeContext) -> StageResult:
    down = await ssh_problem(ctx.node, ctx.tuning.ssh_probe_timeout_s)
    if down:
        if ctx.facts.get("os_installed_now"):
            raise NodeCheckFailed(f"SSH not reachable after the OS install: {down}")
        return skipped(f"SSH not reachable: {down}")
    return await _run_or_recall(ctx, ctx.per_run.setdefault(STAGE, SitePlaybook()))


class SitePlaybook:
    """The playbook one engine run applies, and the batches its nodes share (one object per run)."""

    def __init__(self, playbook: Path | None = None, workdir: Path | None = None, stage: str = STAGE) -> None:
        from clusterctl.burnin.runtime import Runtime
        from clusterctl.provision.stages.os import ansible

        self.playbook = (playbook or ansible.SITE_PLAYBOOK).resolve()
        self.workdir = workdir
        self.stage = stage
        # The playbooks install the burn-in runtime (role burnin_runtime), whose workload lies outside playbooks/.
        self.runtime = Runtime.this_release()
        self.batches: Batches | None = None
        self._digest: str | None = None

    def fingerprint(self, inventory: Inventory, node: Node) -> str:
        from clusterctl.inventory.export_ansible import hostvars

        if self._digest is None:
            self._digest = playbook_digest(self.playbook)
        # "host" and "extra" stay, empty, so outcomes recorded before they were dropped still match.
        facts = {"hostvars": hostvars(inventory, node), "host": {}, "extra": {}, "playbook": self._digest,
                 "runtime": [self.runtime.version, self.runtime.checksum]}
        return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def batches_for(self, ctx: NodeContext) -> Batches:
        if self.batches is None:
            from clusterctl.provision.stages.os import ansible

            journal, tuning, inventory = ctx.journal, ctx.tuning, ctx.inventory
            workdir = self.workdir or state_dir() / "ansible"
            policy = BatchPolicy(window_s=tuning.os_batch_window_s, max_batch=tuning.os_batch_max,
                                 forks=tuning.os_forks)

            loop, gate = asyncio.get_running_loop(), ctx.gate

            def run(nodes: list[Node], cancel: threading.Event) -> Mapping[str, HostOutcome]:
                # The batch runs in a worker thread; its reboot gate lives on the engine's loop.
                reboots = RebootGate(gate, inventory, [n.name for n in nodes])
                asyncio.run_coroutine_threadsafe(reboots.__aenter__(), loop).result(timeout=60)
                try:
                    return ansible.run_playbook(
                        inventory, nodes, workdir=workdir, playbook=self.playbook, store=journal.store,
                        run_id=journal.run_id, forks=policy.forks, timeout=tuning.os_deadline_s, cancel=cancel,
                        stage=self.stage,
                        extra_vars={"clusterctl_reboot_gate": str(reboots.path), **self.runtime.extra_vars()},
                    )
                finally:
                    asyncio.run_coroutine_threadsafe(reboots.__aexit__(None, None, None), loop).result(timeout=60)

            self.batches = Batches(journal, run, policy, stage=self.stage)
        return self.batches


async def _run_or_recall(ctx: NodeContext, site: SitePlaybook, *, recall: bool = True) -> StageResult:
    """`recall=False`: run even where the same playbook passed before (what is on the node may have changed)."""
    fp = await asyncio.to_thread(site.fingerprint, ctx.inventory, ctx.node)
    last = ctx.journal.last_outcome(ctx.name, site.stage, KEY)
    if (recall and not ctx.tuning.os_reapply and last and last.get("result") == "ok" and last.get("fingerprint") == fp
            and not ctx.facts.get("os_installed_now") and not ctx.journal.open_intent(ctx.name, site.stage, KEY)):
        return done("playbook already applied (same playbooks and variables)", fingerprint=fp)
    outcome = await site.batches_for(ctx).submit(ctx.node, fp)
    name = site.playbook.name
    if not outcome.ok:
        where = f" at task {outcome.failed_task!r}" if outcome.failed_task else ""
        raise NodeCheckFailed(f"playbooks/{name} {outcome.status}{where}: {outcome.message or 'no result'}")
    return done(None, playbook=f"playbooks/{name}", changed=outcome.changed, ok=outcome.tasks_ok, fingerprint=fp)
