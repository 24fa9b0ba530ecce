"""One SSH exec request on a lab node: the validation agent, the burn-in, or a real shell command.

- `python3 -` (possibly behind `env K=V ...`) with the validation agent on stdin (same sha256 as
  clusterctl/validate/agent.py): the agent's own `collect` runs in this process against the
  node's simulated hardware (clusterctl.sim.nodeio) and its JSON document is the output;
- a command that starts `torchrun ... -m workloads.transformer ...`: the node's ranks report as
  clusterctl.sim.ranks simulates them;
- a command that starts `torchrun ... -m workloads.allreduce ...`: the node meets its job's other
  nodes and reports the interconnect figures clusterctl.sim.allreduce simulates;
- anything else (any other program on stdin included): a real `/bin/sh -c COMMAND` as this
  process's user, in the node's sandbox LAB_DIR/nodes/<name>/ with HOME there and
  CLUSTERCTL_NODE=<name>, stdin/stdout/stderr and the exit status wired to the channel.
  Ansible's modules run this way (with pipelining, or through the SFTP subsystem).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shlex
import sys
from functools import cache
from pathlib import Path
from typing import Any

from clusterctl.sim.node import NodeHardware

COMMAND_TIMEOUT_S = 3600.0  # a real command the lab runs for a client is killed after this
MAX_STDIN = 64 * 1024 * 1024


@cache
def agent_digest() -> str:
    from clusterctl.validate import agent

    return hashlib.sha256(Path(agent.__file__).read_bytes()).hexdigest()


def python_stdin_args(command: str) -> tuple[dict[str, str], list[str]] | None:
    """(env, args) when the command is `[env K=V ...] python3 - ARGS`, else None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    env: dict[str, str] = {}
    if words and words[0] == "env":
        words = words[1:]
        while words and "=" in words[0] and words[0].split("=", 1)[0].isidentifier():
            name, _, value = words.pop(0).partition("=")
            env[name] = value
    if len(words) >= 2 and words[0].rsplit("/", 1)[-1] in ("python3", "python") and words[1] == "-":
        return env, words[2:]
    return None


# A fresh node's PATH, not the controller's: tools such as Ansible's interpreter discovery must
# find what a node has (/usr/bin/python3), not the controller's pyenv shims or virtualenv. The
# lab's own interpreter directory comes last, for machines without a system Python.
NODE_PATH = f"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:{Path(sys.executable).parent}"


def sandbox(lab_dir: Path, node: str) -> Path:
    path = lab_dir / "nodes" / node
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


# A simulated node's sudo: the lab's user already owns the node's sandbox, so sudo only drops its
# own options (-H -S -n -u USER -p PROMPT, as Ansible's become passes them) and runs the command.
SUDO = """#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -u|-p|-g) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec "$@"
"""


def node_tools(lab_dir: Path) -> Path:
    """LAB_DIR/bin with the tools a node has that this machine may lack (sudo)."""
    bin_dir = lab_dir / "bin"
    sudo = bin_dir / "sudo"
    if not sudo.exists():
        bin_dir.mkdir(parents=True, exist_ok=True)
        sudo.write_text(SUDO)
        sudo.chmod(0o755)
    return bin_dir


def node_root(lab_dir: Path, node: str) -> Path:
    """The node's root (CLUSTERCTL_ROOT): where the playbooks write, with the burn-in runtime already in it,
    as a node fresh from the os stage has it (a lab node cannot install PyTorch: it has no package index)."""
    root = sandbox(lab_dir, node) / "root"
    if root not in _seeded:
        from clusterctl.burnin.runtime import Runtime, lay_out

        root.mkdir(exist_ok=True)
        if not (root / Runtime.this_release().directory.lstrip("/")).exists():
            lay_out(root, sys.executable)
        _seeded.add(root)
    return root


_seeded: set[Path] = set()


def shell_env(lab_dir: Path, node: str, user: str) -> dict[str, str]:
    home = sandbox(lab_dir, node)
    root = node_root(lab_dir, node)
    return {
        "HOME": str(home), "USER": user, "LOGNAME": user, "SHELL": "/bin/sh",
        "PATH": f"{node_tools(lab_dir)}:{NODE_PATH}", "LANG": "C.UTF-8", "CLUSTERCTL_ROOT": str(root),
        "CLUSTERCTL_NODE": node, "CLUSTERCTL_LAB_DIR": str(lab_dir),
    }


async def handle(process: Any, hw: NodeHardware, lab_dir: Path, user: str, time_scale: float,
                 latency_s: float) -> None:
    """Serve one asyncssh server process (exec request) to its end."""
    command = process.command
    status = 127
    try:
        if latency_s:
            await asyncio.sleep(latency_s)
        if not command:
            process.stderr.write(b"this lab node serves exec requests only (no interactive shell)\n")
            status = 1
        else:
            status = await _dispatch(process, command, hw, lab_dir, user, time_scale)
    except (BrokenPipeError, ConnectionError):
        return
    except Exception as exc:  # noqa: BLE001 - one request's surprise is its own exit status, not the lab's
        with contextlib.suppress(Exception):
            process.stderr.write(f"lab node {hw.name}: {type(exc).__name__}: {exc}\n".encode())
        status = 255
    # sshd's order: EOF on the channel, then the exit status, then close (paramiko waits for the EOF).
    with contextlib.suppress(Exception):
        process.channel.write_eof()
    process.exit(status)


async def _dispatch(process: Any, command: str, hw: NodeHardware, lab_dir: Path, user: str,
                    time_scale: float) -> int:
    from clusterctl.sim.allreduce import parse_allreduce, run_allreduce
    from clusterctl.sim.ranks import parse_burnin, run_burnin

    python = python_stdin_args(command)
    if python is not None:
        program = await _read_all(process)
        if hashlib.sha256(program).hexdigest() == agent_digest():
            from clusterctl.sim.nodeio import agent_report

            report = agent_report(hw, python[1], sandbox(lab_dir, hw.name) / "root")
            process.stdout.write((json.dumps(report, sort_keys=True) + "\n").encode())
            return 0
        return await _shell(process, command, hw.name, lab_dir, user, stdin=program)

    async def write(text: str) -> None:
        process.stdout.write(text.encode())
        await process.stdout.drain()

    bench = parse_allreduce(command)
    if bench is not None:
        async def error(text: str) -> None:
            process.stderr.write(text.encode())
            await process.stderr.drain()

        return await run_allreduce(hw, bench, write, error)
    job = parse_burnin(command)
    if job is not None:
        hw.load = 1.0
        try:
            return await run_burnin(hw, job, time_scale, write)
        finally:
            hw.load = 0.0
    return await _shell(process, command, hw.name, lab_dir, user)


async def _read_all(process: Any) -> bytes:
    data = bytearray()
    while len(data) <= MAX_STDIN:
        chunk = await process.stdin.read(65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def _shell(process: Any, command: str, node: str, lab_dir: Path, user: str, stdin: bytes | None = None) -> int:
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, cwd=sandbox(lab_dir, node), env=shell_env(lab_dir, node, user),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    if stdin is not None:
        proc.stdin.write(stdin)
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        proc.stdin.close()
        feed = None
    else:
        feed = asyncio.ensure_future(_pump_in(process, proc.stdin))
    copies = [asyncio.ensure_future(_pump_out(proc.stdout, process.stdout)),
              asyncio.ensure_future(_pump_out(proc.stderr, process.stderr))]
    try:
        status = await asyncio.wait_for(proc.wait(), COMMAND_TIMEOUT_S)
        await asyncio.wait_for(asyncio.gather(*copies), 10.0)
    except TimeoutError:
        _kill(proc)
        status = 124
    except asyncio.CancelledError:  # the client went away or the lab stops: leave no process behind
        _kill(proc)
        raise
    finally:
        for task in [feed, *copies]:
            if task is not None and not task.done():
                task.cancel()
    return status if status >= 0 else 128 - status


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 9)


async def _pump_in(process: Any, sink: asyncio.StreamWriter) -> None:
    try:
        while True:
            chunk = await process.stdin.read(65536)
            if not chunk:
                break
            sink.write(chunk)
            await sink.drain()
    except (ConnectionError, BrokenPipeError):
        pass
    finally:
        with contextlib.suppress(Exception):
            sink.close()


async def _pump_out(source: asyncio.StreamReader, channel: Any) -> None:
    while True:
        chunk = await source.read(65536)
        if not chunk:
            return
        channel.write(chunk)
        await channel.drain()
