"""SSH to nodes: known_hosts-checked paramiko connections, quoted commands, programs that answer in JSON."""

from clusterctl.ssh.command import command_line
from clusterctl.ssh.errors import (
    SSHAuthFailed,
    SSHBadOutput,
    SSHCommandFailed,
    SSHCommandTimeout,
    SSHConfigError,
    SSHError,
    SSHHostKeyError,
    SSHUnreachable,
)
from clusterctl.ssh.fleet import SSHOutcome, run_many
from clusterctl.ssh.pool import Result, SSHPool
from clusterctl.ssh.target import SSHTarget, target_from_node

__all__ = [
    "Result",
    "SSHAuthFailed",
    "SSHBadOutput",
    "SSHCommandFailed",
    "SSHCommandTimeout",
    "SSHConfigError",
    "SSHError",
    "SSHHostKeyError",
    "SSHOutcome",
    "SSHPool",
    "SSHTarget",
    "SSHUnreachable",
    "command_line",
    "run_many",
    "target_from_node",
]
