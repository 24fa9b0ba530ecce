"""The pluggable edges of the pipeline, with the defaults `clusterctl provision` uses.

- `ssh_answers`: "is the OS up?" = the node's SSH port accepts a TCP connection. A site with
  another signal (an installer callback, a DHCP lease) passes its own `Hooks.os_installed`.
- `ansible_configure`: the `os` stage's work, through clusterctl.provision.ansible when present.
- `validate_hook`: clusterctl.validate's node check when that package offers one
  (`clusterctl.validate.provision_hook.validate_node(ctx) -> StageResult`); absent, the
  `validate` stage is reported skipped with that reason and the node is ready unvalidated.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from clusterctl.errors import NodeCheckFailed
from clusterctl.provision.context import Hooks, StageResult, done, skipped

if TYPE_CHECKING:
    from clusterctl.inventory import Node
    from clusterctl.provision.context import NodeContext, Tuning


async def ssh_answers(node: Node, tuning: Tuning) -> str | None:
    host, port = node.ssh.address, node.ssh.port
    if not host:
        return "no SSH address in the inventory"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(str(host), port), tuning.ssh_probe_timeout_s)
    except TimeoutError:
        return f"no answer from {host}:{port} within {tuning.ssh_probe_timeout_s:.0f} s"
    except ConnectionRefusedError:
        return f"connection refused ({host}:{port})"
    except OSError as exc:
        return f"{type(exc).__name__} ({host}:{port})"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def ansible_configure(ctx: NodeContext) -> StageResult:
    """playbooks/site.yml for this one node (per-host results go to the store through the bridge)."""
    try:
        ansible = importlib.import_module("clusterctl.provision.ansible")
    except ImportError:
        return skipped("the ansible bridge (clusterctl.provision.ansible) is not installed")
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    outcomes = await asyncio.to_thread(
        ansible.run_playbook, ctx.inventory, [ctx.node], workdir=base / "clusterctl" / "ansible",
        store=ctx.journal.store, run_id=ctx.journal.run_id, timeout=ctx.tuning.os_deadline_s,
    )
    outcome = outcomes.get(ctx.node.name)
    if outcome is None or not outcome.ok:
        where = f" at task {outcome.failed_task!r}" if outcome is not None and outcome.failed_task else ""
        why = (outcome.message if outcome is not None else None) or "no result"
        raise NodeCheckFailed(f"playbooks/site.yml {getattr(outcome, 'status', 'failed')}{where}: {why}")
    return done(None, playbook="playbooks/site.yml", changed=outcome.changed, ok=outcome.tasks_ok)


async def validate_hook(ctx: NodeContext) -> StageResult:
    try:
        module = importlib.import_module("clusterctl.validate.provision_hook")
    except ImportError:
        return skipped("no validation hook installed (clusterctl.validate.provision_hook): ready unvalidated")
    result: StageResult = await module.validate_node(ctx)
    return result


def default_hooks() -> Hooks:
    return Hooks(os_installed=ssh_answers, configure_os=ansible_configure, validate=validate_hook)
