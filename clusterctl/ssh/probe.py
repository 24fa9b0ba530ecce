"""Is a node's OS up? Its SSH port accepting a TCP connection is the signal provisioning waits on.

A TCP connect is enough, and cheap: no key exchange, no authentication, nothing logged on the node
beyond a dropped connection. The `boot` stage polls it while an install runs; the `os` and
`validate` stages read it once, so a node without SSH is reported skipped, never passed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clusterctl.inventory import Node


async def ssh_problem(node: Node, timeout_s: float) -> str | None:
    """None when the node's SSH port answers; else why not (e.g. 'connection refused (10.0.0.5:22)')."""
    host, port = node.ssh.address, node.ssh.port
    if not host:
        return "no SSH address in the inventory"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(str(host), port), timeout_s)
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout_s:.0f} s"
    except ConnectionRefusedError:
        return f"connection refused ({host}:{port})"
    except OSError as exc:
        return f"{type(exc).__name__} ({host}:{port})"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None
