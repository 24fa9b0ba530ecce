"""The pluggable edges of the pipeline, with the defaults `clusterctl provision` uses.

- `ssh_answers`: "is the OS up?" = the node's SSH port accepts a TCP connection. A site with
  another signal (an installer callback, a DHCP lease) passes its own `Hooks.os_installed`.
- `AnsibleOS` (clusterctl.provision.playbook_batches): the `os` stage's work, playbooks/site.yml
  through ansible-runner, one run per batch of nodes.
- `validate_hook`: clusterctl.validate's node check when that package offers one
  (`clusterctl.validate.provision_hook.validate_node(ctx) -> StageResult`); absent, the
  `validate` stage is reported skipped with that reason and the node is ready unvalidated.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from typing import TYPE_CHECKING

from clusterctl.provision.context import Hooks, StageResult, skipped

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


async def validate_hook(ctx: NodeContext) -> StageResult:
    try:
        module = importlib.import_module("clusterctl.validate.provision_hook")
    except ImportError:
        return skipped("no validation hook installed (clusterctl.validate.provision_hook): ready unvalidated")
    result: StageResult = await module.validate_node(ctx)
    return result


def default_hooks(*, reapply: bool = False) -> Hooks:
    from clusterctl.provision.playbook_batches import AnsibleOS

    return Hooks(os_installed=ssh_answers, configure_os=AnsibleOS(reapply=reapply), validate=validate_hook)
