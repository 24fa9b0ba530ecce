"""Is a node's OS up? Its SSH server greeting a connection is the signal provisioning waits on.

An SSH server sends its identification line (`SSH-2.0-...`, RFC 4253 section 4.2) as soon as a client
connects, before any key exchange: reading it is as cheap as a TCP connect (no authentication, nothing
logged on the node beyond a dropped connection) and tells an sshd from a port that only accepts
connections (a load balancer, an installer's stub, a host closing connections while it shuts down).
The `boot` stage polls it while an install runs; the `os` and `validate` stages read it once, so a
node without SSH is reported skipped, never passed.
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
        reader, writer = await asyncio.wait_for(asyncio.open_connection(str(host), port), timeout_s)
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout_s:.0f} s"
    except ConnectionRefusedError:
        return f"connection refused ({host}:{port})"
    except OSError as exc:
        return f"{type(exc).__name__} ({host}:{port})"
    try:
        greeting = await asyncio.wait_for(reader.readline(), timeout_s)
    except TimeoutError:
        greeting = None
    except (OSError, ValueError):
        greeting = b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if greeting is None:
        return f"no SSH greeting from {host}:{port} within {timeout_s:.0f} s"
    if not greeting.startswith(b"SSH-"):
        return f"connection closed without an SSH greeting ({host}:{port})"
    return None
