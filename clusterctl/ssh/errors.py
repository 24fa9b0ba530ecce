"""SSH failures, one class per thing an operator does differently about it.

They extend the project's one hierarchy (`clusterctl.errors.ClusterctlError`) with exit code 1:
an SSH failure concerns one node, and the fleet runner turns it into that node's result.
"""

from __future__ import annotations

from clusterctl.errors import EXIT_FAILED_NODES, ClusterctlError


class SSHError(ClusterctlError):
    """Base: carries the node it concerns; the message already starts with it."""

    exit_code = EXIT_FAILED_NODES

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(f"{node}: {message}" if node else message)
        self.node = node
        self.reason = message


class SSHUnreachable(SSHError):
    """No TCP connection or SSH handshake within the connect timeout."""


class SSHHostKeyError(SSHError):
    """The host key is not in known_hosts, or differs from it: never accepted automatically."""


class SSHAuthFailed(SSHError):
    """The node refused the key."""


class SSHCommandTimeout(SSHError):
    """The remote command ran past its deadline; its channel was closed."""


class SSHCommandFailed(SSHError):
    """The remote command exited non-zero; the message ends with the tail of its stderr."""

    def __init__(self, message: str, *, node: str | None = None, exit_status: int | None = None) -> None:
        super().__init__(message, node=node)
        self.exit_status = exit_status


class SSHBadOutput(SSHError):
    """The remote program did not print the one JSON document it promised."""


class SSHConfigError(ClusterctlError):
    """The inventory cannot say how to reach a node (no address, a key that is not a file). Exit 2."""
