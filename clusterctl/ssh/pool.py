"""Bounded SSH execution with paramiko: host keys checked, deadlines on connect and on every command.

A connection is opened per call and closed after it: validation sends one program per node,
so a cache of idle connections would only hold sshd slots open. The pool's semaphore is
the global limit on sessions in flight, shared by every thread that uses it.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clusterctl import log
from clusterctl.ssh.command import command_line
from clusterctl.ssh.errors import (
    SSHAuthFailed,
    SSHBadOutput,
    SSHCommandFailed,
    SSHCommandTimeout,
    SSHError,
    SSHHostKeyError,
    SSHUnreachable,
)
from clusterctl.ssh.target import SSHTarget

_log = log.get("ssh")
MAX_OUTPUT = 32 * 1024 * 1024
"""Per stream: a runaway remote program cannot fill the controller's memory."""
TAIL = 800


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int
    stdout: bytes
    stderr: bytes

    def stderr_tail(self, limit: int = TAIL) -> str:
        return _tail(self.stderr, limit)


_known_hosts_cache: dict[tuple[str, int, int], Any] = {}
_known_hosts_lock = threading.Lock()


def _known_hosts(path: str) -> Any:
    """The parsed known_hosts file, cached by (path, mtime, size) so an edited file is read again."""
    import os

    import paramiko

    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    with _known_hosts_lock:
        cached = _known_hosts_cache.get(key)
        if cached is None:
            cached = paramiko.HostKeys(path)
            for stale in [k for k in _known_hosts_cache if k[0] == path]:
                del _known_hosts_cache[stale]
            _known_hosts_cache[key] = cached
    return cached


_keys_cache: dict[tuple[str, int, int], Any] = {}


def _client_key(path: str) -> Any | None:
    """The private key file, parsed once per file version and shared (a key is only read to sign): opening and
    parsing it for every connection is a file read and a parse per node. None when it does not load here, so
    paramiko loads it itself and reports why as before (missing file, passphrase, unknown format)."""
    import os

    import paramiko

    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_mtime_ns, st.st_size)
    with _known_hosts_lock:
        cached = _keys_cache.get(key)
    if cached is None:
        try:
            cached = paramiko.PKey.from_path(path)
        except Exception:  # noqa: BLE001 - an encrypted key raises TypeError here: paramiko's own load says why
            return None
        with _known_hosts_lock:
            for stale in [k for k in _keys_cache if k[0] == path]:
                del _keys_cache[stale]
            _keys_cache[key] = cached
    return cached


def _tail(data: bytes, limit: int = TAIL) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else "…" + text[-limit:]


class SSHPool:
    def __init__(
        self,
        *,
        max_sessions: int = 64,
        connect_timeout: float = 10.0,
        command_timeout: float = 300.0,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.max_sessions = max_sessions
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._gate = threading.BoundedSemaphore(max_sessions)

    def run(
        self,
        target: SSHTarget,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run `argv` (quoted, never interpreted by the remote shell); a non-zero exit is a result, not an error."""
        line = command_line(argv, env)
        deadline = time.monotonic() + (self.command_timeout if timeout is None else timeout)
        with self._gate:
            client = self._connect(target)
            try:
                return self._exec(client, target, line, stdin, deadline)
            finally:
                client.close()

    def run_json(
        self,
        target: SSHTarget,
        program: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        python: str = "python3",
    ) -> Any:
        """Send `program` to `python3 -` on stdin and return the single JSON document it prints."""
        result = self.run(target, [python, "-", *args], stdin=program.encode(), env=env, timeout=timeout)
        if result.exit_status != 0:
            tail = result.stderr_tail() or _tail(result.stdout) or "no output"
            raise SSHCommandFailed(
                f"{python} exited with status {result.exit_status}: {tail}",
                node=target.name, exit_status=result.exit_status,
            )
        try:
            return json.loads(result.stdout)
        except ValueError as exc:
            shown = _tail(result.stdout, 200) or "nothing"
            raise SSHBadOutput(f"expected one JSON document, got {shown!r} ({exc})", node=target.name) from None

    def _connect(self, target: SSHTarget) -> Any:
        import paramiko

        client = paramiko.SSHClient()
        try:
            if target.known_hosts is not None:
                # paramiko re-parses known_hosts on every load (~40 ms for a 2,000-node file); parse
                # once per file version and share the read-only result. Lookups never write to it.
                client._host_keys = _known_hosts(str(target.known_hosts))  # noqa: SLF001
            else:
                client.load_system_host_keys()
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            where = target.known_hosts or "~/.ssh/known_hosts"
            raise SSHHostKeyError(f"cannot read known_hosts {where}: {exc}", node=target.name) from None
        # Never trust on first use: an unknown host is an error the operator resolves with ssh-keyscan.
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        key_args: dict[str, Any] = {}
        if target.key_file is not None:
            loaded = _client_key(str(target.key_file))
            key_args = {"pkey": loaded} if loaded is not None else {"key_filename": str(target.key_file)}
            key_args |= {"look_for_keys": False, "allow_agent": False}
        try:
            client.connect(
                target.address, port=target.port, username=target.user, timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout, **key_args,
            )
        except paramiko.BadHostKeyException:
            client.close()
            raise SSHHostKeyError(
                f"host key for {target.endpoint} does not match known_hosts "
                f"({target.known_hosts or '~/.ssh/known_hosts'}): the host was reinstalled or this is not it; "
                "verify, then update known_hosts", node=target.name,
            ) from None
        except paramiko.PasswordRequiredException:
            client.close()
            raise SSHAuthFailed(
                f"the key {target.key_file} is passphrase-protected; use an unencrypted key file for automation",
                node=target.name,
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            raise SSHAuthFailed(f"{target.user}@{target.endpoint} refused the key", node=target.name) from None
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                raise SSHHostKeyError(
                    f"host key for {target.endpoint} is not in known_hosts "
                    f"({target.known_hosts or '~/.ssh/known_hosts'}); add it after checking it "
                    f"(ssh-keyscan -p {target.port} {target.address})", node=target.name,
                ) from None
            raise SSHUnreachable(f"SSH handshake with {target.endpoint} failed: {exc}", node=target.name) from None
        except (OSError, EOFError) as exc:
            client.close()
            reason = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else str(exc) or type(exc).__name__
            raise SSHUnreachable(f"cannot connect to {target.endpoint}: {reason}", node=target.name) from None
        return client

    def _exec(self, client: Any, target: SSHTarget, line: str, stdin: bytes | None, deadline: float) -> CommandResult:
        _log.debug("%s: running %s", target.name, line)
        transport = client.get_transport()
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
            channel.settimeout(max(0.1, deadline - time.monotonic()))
            channel.exec_command(line)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            out, err = _collect(channel, target, deadline)
            status = channel.recv_exit_status()
        except TimeoutError:
            raise SSHCommandTimeout("the command ran past its deadline", node=target.name) from None
        except SSHError:
            raise
        except Exception as exc:  # noqa: BLE001 - paramiko raises many types for a dropped session
            raise SSHUnreachable(f"session with {target.endpoint} broke: {exc}", node=target.name) from None
        return CommandResult(exit_status=status, stdout=out, stderr=err)


def _collect(channel: Any, target: SSHTarget, deadline: float) -> tuple[bytes, bytes]:
    """Read stdout and stderr together (a full stderr must not block stdout) until exit and EOF."""
    out = bytearray()
    err = bytearray()
    while True:
        progressed = False
        while channel.recv_ready():
            out += channel.recv(65536)
            progressed = True
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
            progressed = True
        if len(out) > MAX_OUTPUT or len(err) > MAX_OUTPUT:
            channel.close()
            raise SSHBadOutput(f"more than {MAX_OUTPUT} bytes of output", node=target.name)
        if channel.exit_status_ready() and channel.eof_received and not (
            channel.recv_ready() or channel.recv_stderr_ready()
        ):
            return bytes(out), bytes(err)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            channel.close()
            raise SSHCommandTimeout("the command ran past its deadline", node=target.name)
        if not progressed and channel.eof_received:
            # After EOF paramiko keeps the channel's pipe readable for good (Channel._handle_eof calls
            # set_forever), so a poll would return at once and this loop would spin until the exit status
            # arrives: wait for that instead (status_event is set by the exit status and by a close).
            channel.status_event.wait(min(0.2, remaining))
        elif not progressed:
            _wait_readable(channel, min(0.2, remaining))


def _wait_readable(channel: Any, timeout: float) -> None:
    """poll(2), not select(2): select cannot watch a descriptor numbered 1024 or above (FD_SETSIZE, see
    select(2)), and a controller talking to 12,500 BMCs and nodes holds more descriptors than that."""
    poller = select.poll()
    poller.register(channel.fileno(), select.POLLIN)
    poller.poll(timeout * 1000)
