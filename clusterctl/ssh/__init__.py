"""SSH to nodes: known_hosts-checked connections, quoted commands, programs that answer in JSON, and long
commands on thousands of nodes followed from one thread (`LongRuns`)."""

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
from clusterctl.ssh.fleet import run_many
from clusterctl.ssh.longrun import LongRuns, NodeRun
from clusterctl.ssh.pool import CommandResult, SSHPool
from clusterctl.ssh.target import SSHTarget, target_from_node

__all__ = [
    "CommandResult",
    "LongRuns",
    "NodeRun",
    "SSHAuthFailed",
    "SSHBadOutput",
    "SSHCommandFailed",
    "SSHCommandTimeout",
    "SSHConfigError",
    "SSHError",
    "SSHHostKeyError",
    "SSHPool",
    "SSHTarget",
    "SSHUnreachable",
    "command_line",
    "run_many",
    "target_from_node",
]
