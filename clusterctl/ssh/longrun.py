"""Long commands on many nodes at once (torchrun on 2,000 nodes), followed from one thread.

paramiko gives every connection its own transport thread, so N long commands cost N threads
however their channels are read. asyncssh (already the lab's server side) runs every connection
on one asyncio event loop: `LongRuns` owns that loop in one background thread (plus HELPER_THREADS
that asyncssh uses to prepare each connection's options), starts the
commands with bounded concurrency (connect + exec, `max_starting` at a time) and then follows
every running command from the same loop, each output stream capped at `MAX_OUTPUT`.
Host keys are checked against known_hosts exactly as the paramiko pool does (never trusted on
first use), and a node that cannot be reached is that node's error, never the fleet's.

Every node is started even when others fail: a caller that needs them all (torchrun's static
rendezvous) learns which ones failed from `start_failures()` once `started()` is true.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from clusterctl import log
from clusterctl.ssh.command import command_line
from clusterctl.ssh.errors import (
    SSHAuthFailed,
    SSHBadOutput,
    SSHCommandTimeout,
    SSHError,
    SSHHostKeyError,
    SSHUnreachable,
)
from clusterctl.ssh.pool import MAX_OUTPUT
from clusterctl.ssh.target import SSHTarget

_log = log.get("ssh.longrun")
KEEPALIVE_S = 30.0
"""A node that dies mid-run is noticed after about three of these, not at the job's deadline."""
STOP_WAIT_S = 60.0
HELPER_THREADS = 4


@dataclass
class NodeRun:
    """One node's command as the controller sees it; written only on the event loop's thread."""

    node: str
    state: str = "pending"  # pending | running | done | failed
    exit_status: int | None = None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    error: str | None = None
    error_type: str | None = None
    started: bool = False
    """The remote command was started (its processes may need ending)."""

    def copy(self) -> NodeRun:
        return NodeRun(self.node, self.state, self.exit_status, bytearray(self.stdout), bytearray(self.stderr),
                       self.error, self.error_type, self.started)

    def fail(self, error: SSHError) -> None:
        self.state, self.error, self.error_type = "failed", error.reason, type(error).__name__


class LongRuns:
    """Start `argv` on every target, follow them all from one thread, stop what is left on request."""

    def __init__(self, *, max_starting: int = 32, connect_timeout: float = 10.0) -> None:
        if max_starting < 1:
            raise ValueError("max_starting must be at least 1")
        self.max_starting = max_starting
        self.connect_timeout = connect_timeout
        self._runs: dict[str, NodeRun] = {}
        self._conns: dict[str, Any] = {}
        self._targets: dict[str, SSHTarget] = {}
        self._options: dict[tuple[Any, ...], Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._ended = threading.Event()

    # --- the caller's side (any thread) ---------------------------------------------------------

    def start(self, commands: Sequence[tuple[SSHTarget, Sequence[str], Mapping[str, str] | None]],
              timeout: float) -> None:
        """Start every (target, argv, env) in the background; each command is closed `timeout` s after it
        started running. Not after the batch started: with `max_starting` at a time, 12,500 nodes take
        minutes to start, and a deadline shared from the first left the last ones a tenth of a second."""
        if self._loop is not None:
            raise RuntimeError("a LongRuns starts once")
        lines = {t: command_line(argv, env) for t, argv, env in commands}
        for target in lines:
            self._targets[target.name] = target
            self._runs[target.name] = NodeRun(target.name)
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()

        loop.set_default_executor(ThreadPoolExecutor(HELPER_THREADS, thread_name_prefix="ssh-longrun-helper"))

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="ssh-longrun", daemon=True)
        self._thread.start()
        ready.wait(10)
        asyncio.run_coroutine_threadsafe(self._run_all(lines, timeout), loop)

    def started(self) -> bool:
        """Every command was started or failed to start."""
        return self._started.is_set()

    def wait(self, timeout: float) -> bool:
        """True once every command has ended (or failed); waits at most `timeout` s."""
        return self._ended.wait(max(0.0, timeout))

    def snapshot(self) -> dict[str, NodeRun]:
        """A consistent copy of every node's run, output included."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return {n: r.copy() for n, r in self._runs.items()}

        async def copy() -> dict[str, NodeRun]:
            return {n: r.copy() for n, r in self._runs.items()}

        return asyncio.run_coroutine_threadsafe(copy(), loop).result(STOP_WAIT_S)

    def start_failures(self) -> dict[str, NodeRun]:
        """The nodes whose command never started (copies without output): final once `started()`."""
        return {n: NodeRun(n, r.state, r.exit_status, error=r.error, error_type=r.error_type)
                for n, r in list(self._runs.items()) if r.state == "failed" and not r.started}

    def stop(self, kill: Callable[[str], Sequence[str]] | None = None, *, max_parallel: int = 32,
             timeout: float = 30.0) -> None:
        """Run `kill(node)` on every node whose command may still run (at most `max_parallel` at once),
        then close every connection and the loop. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not loop.is_running():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(kill, max_parallel, timeout), loop).result(
                timeout + STOP_WAIT_S)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(STOP_WAIT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_WAIT_S)
        if not thread.is_alive():
            loop.close()

    # --- the event loop's side ------------------------------------------------------------------

    async def _run_all(self, lines: Mapping[SSHTarget, str], timeout: float) -> None:
        self._task = asyncio.current_task()
        gate = asyncio.Semaphore(self.max_starting)
        pending = len(lines)

        def one_started() -> None:
            nonlocal pending
            pending -= 1
            if pending == 0:
                self._started.set()

        try:
            await asyncio.gather(*(self._one(t, line, timeout, gate, one_started) for t, line in lines.items()))
        finally:
            self._started.set()
            self._ended.set()

    async def _one(self, target: SSHTarget, line: str, timeout: float, gate: asyncio.Semaphore,
                   started: Callable[[], None]) -> None:
        run = self._runs[target.name]
        process = None
        try:
            async with gate:
                try:
                    conn = await asyncio.wait_for(self._connect(target), self.connect_timeout)
                except TimeoutError:
                    raise SSHUnreachable(f"cannot connect to {target.endpoint}: timed out",
                                         node=target.name) from None
                self._conns[target.name] = conn
                _log.debug("%s: running %s", target.name, line)
                process = await conn.create_process(line, encoding=None)
                run.state, run.started = "running", True
            started()
            process.stdin.write_eof()
            await asyncio.wait_for(self._follow(run, target, process), timeout)
            run.state = "done"
        except TimeoutError:
            run.fail(SSHCommandTimeout("the command ran past its deadline", node=target.name))
        except asyncio.CancelledError:
            run.state, run.error, run.error_type = "failed", "stopped by the controller", "Cancelled"
            raise
        except SSHError as exc:
            run.fail(exc)
        except Exception as exc:  # noqa: BLE001 - asyncssh raises many types for a dropped session
            run.fail(self._map_error(target, exc))
        finally:
            if not run.started:
                started()
            if process is not None and run.state != "done":
                process.close()
            if run.state == "done":
                self._close(target.name)

    async def _follow(self, run: NodeRun, target: SSHTarget, process: Any) -> None:
        async def pump(stream: Any, sink: bytearray) -> None:
            while chunk := await stream.read(65536):
                sink += chunk
                if len(sink) > MAX_OUTPUT:
                    raise SSHBadOutput(f"more than {MAX_OUTPUT} bytes of output", node=target.name)

        await asyncio.gather(pump(process.stdout, run.stdout), pump(process.stderr, run.stderr))
        completed = await process.wait(check=False)
        status = completed.exit_status
        run.exit_status = status if status is not None and status >= 0 else 255

    async def _connect(self, target: SSHTarget) -> Any:
        import asyncssh

        return await asyncssh.connect(target.address, target.port, options=self._options_for(target))

    def _options_for(self, target: SSHTarget) -> Any:
        """Connection options per (user, key file, known_hosts): keys and known_hosts are read once, not
        per node; a passphrase-protected key fails here, as it does in the paramiko pool."""
        import asyncssh

        key = (target.user, target.key_file, target.known_hosts)
        options = self._options.get(key)
        if options is None:
            try:
                known_hosts: Any = (asyncssh.read_known_hosts(str(target.known_hosts))
                                    if target.known_hosts is not None else ())
            except (OSError, ValueError) as exc:
                raise SSHHostKeyError(f"cannot read known_hosts {target.known_hosts}: {exc}",
                                      node=target.name) from None
            keys: dict[str, Any] = {}
            if target.key_file is not None:
                try:
                    keys = {"client_keys": [asyncssh.read_private_key(str(target.key_file))], "agent_path": None}
                except asyncssh.KeyImportError:
                    raise SSHAuthFailed(f"the key {target.key_file} is passphrase-protected or unreadable; use an "
                                        "unencrypted key file for automation", node=target.name) from None
                except OSError as exc:
                    raise SSHAuthFailed(f"cannot read the key {target.key_file}: {exc}", node=target.name) from None
            options = asyncssh.SSHClientConnectionOptions(
                username=target.user, known_hosts=known_hosts, config=None, preferred_auth="publickey",
                login_timeout=self.connect_timeout, keepalive_interval=KEEPALIVE_S, keepalive_count_max=3, **keys)
            self._options[key] = options
        return options

    def _map_error(self, target: SSHTarget, exc: Exception) -> SSHError:
        import asyncssh

        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            where = target.known_hosts or "~/.ssh/known_hosts"
            return SSHHostKeyError(f"host key for {target.endpoint} is unknown to or differs from known_hosts "
                                   f"({where}); check it, then add it (ssh-keyscan -p {target.port} "
                                   f"{target.address})", node=target.name)
        if isinstance(exc, asyncssh.PermissionDenied):
            return SSHAuthFailed(f"{target.user}@{target.endpoint} refused the key", node=target.name)
        if isinstance(exc, OSError):
            return SSHUnreachable(f"cannot connect to {target.endpoint}: {exc.strerror or exc}", node=target.name)
        _log.debug("%s: %s", target.name, type(exc).__name__, exc_info=True)
        return SSHUnreachable(f"session with {target.endpoint} broke: {exc or type(exc).__name__}",
                              node=target.name)

    def _close(self, node: str) -> None:
        conn = self._conns.pop(node, None)
        if conn is not None:
            conn.close()

    async def _stop(self, kill: Callable[[str], Sequence[str]] | None, max_parallel: int, timeout: float) -> None:
        gate = asyncio.Semaphore(max(1, max_parallel))

        async def end(node: str, kill: Callable[[str], Sequence[str]]) -> None:
            async with gate:
                conn: Any = self._conns.get(node)
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(self._connect(self._targets[node]), self.connect_timeout)
                        self._conns[node] = conn
                    await asyncio.wait_for(conn.run(command_line(kill(node)), check=False), timeout)
                except Exception as exc:  # noqa: BLE001 - an unreachable node's ranks end by their own timeout
                    _log.debug("%s: could not end the command: %s", node, exc)

        unfinished = [n for n, r in self._runs.items() if r.started and r.exit_status is None]
        if kill is not None and unfinished:
            await asyncio.gather(*(end(n, kill) for n in unfinished))
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=5.0)
        for node in list(self._conns):
            self._close(node)
