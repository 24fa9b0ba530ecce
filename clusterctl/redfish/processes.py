"""One fleet operation spread over worker processes: a sweep of thousands of BMCs outgrows one core.

Sweeping a fleet is CPU-bound in the client (TLS, HTTP parsing, JSON), and one Python process
uses one core. Here the caller's process sweeps one share of the targets and each worker process
another, each in its own event loop through the same `run_fleet`; every result comes back as it
lands, so progress and per-target failures read as they do in one process.

A worker is a fresh interpreter (`python -c`), not a fork: the caller may hold threads (a progress
bar, the dashboard) and a fork can inherit a lock one of them held; and not multiprocessing's
spawn, whose resource-tracker process would outlive the call. Its share of the targets, passwords
included, arrives pickled on its stdin, never on a command line; results return pickled on its
stdout. Its stdin staying open is its lease: when the caller is done, cancelled, or dies, the
worker reads EOF, cancels its sweep (each client still deletes its BMC session on the way out)
and exits; the caller kills one that has not within the grace. A worker that dies leaves each of
its unfinished targets with an error, never the whole call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import pickle
import struct
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from clusterctl import log
from clusterctl.fanout import TargetResult

T = TypeVar("T")

BMCS_PER_PROCESS = 500
"""Below this many BMCs a process's share does not pay for starting it (an interpreter and its imports)."""
STOP_GRACE_S = 30.0
"""How long a stopped worker may take to log its sessions out before it is killed."""
_FRAME = struct.Struct(">I")


def auto_processes(fleet: int, per_process: int = BMCS_PER_PROCESS) -> int:
    """Processes worth sweeping `fleet` BMCs with: one per `per_process` BMCs, at most one per usable core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, fleet // per_process))


def split_limit(limit: int, processes: int) -> int:
    """Each process's part of a fleet-wide limit: the parts add up to at least the whole, none is 0."""
    return max(1, math.ceil(limit / processes))


async def run_in_processes(
    targets: Sequence[Any],
    op: Callable[..., Awaitable[T]],
    processes: int,
    sweep: Callable[..., Awaitable[None]],
    options: dict[str, Any],
    on_done: Callable[[int, TargetResult[T]], None],
) -> None:
    """`sweep(share, op, on_done=..., **options)` here on one share and in `processes - 1` workers on the rest.

    Shares are dealt round-robin, so a rack of slow BMCs listed together is spread over all of them.
    `op`, `sweep` and `options` cross to the workers pickled: functions must be module-level.
    """
    function = getattr(op, "func", op)  # a functools.partial names its function
    if getattr(function, "__module__", None) == "__main__":
        raise ValueError("an operation spread over processes must live in an importable module, not __main__")
    try:
        pickle.dumps(op)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise ValueError(f"an operation spread over processes must be a module-level function: {exc}") from exc
    shares = [list(range(k, len(targets), processes)) for k in range(processes)]
    workers: list[_Worker] = []
    try:
        for share in shares[1:]:
            workers.append(await _Worker.start(share, [targets[i] for i in share], op, options, sweep))

        async def here() -> None:
            mine = shares[0]
            await sweep([targets[i] for i in mine], op, on_done=lambda j, r: on_done(mine[j], r), **options)

        await asyncio.gather(here(), *(w.collect(on_done) for w in workers))
    finally:
        for worker in workers:
            worker.release()  # at once, not in a task a cancellation could drop: the workers wind down
        try:
            await asyncio.shield(asyncio.gather(*(w.reap() for w in workers)))
        except asyncio.CancelledError:
            for worker in workers:  # cancelled again while they wound down: end them now
                worker.kill()
            raise


class _Worker:
    """One worker process: its stdin (the share, then the lease) and its stdout (results, log records)."""

    def __init__(self, process: asyncio.subprocess.Process, share: list[int], names: list[str]) -> None:
        self.process = process
        self.share = share
        self.names = dict(zip(share, names, strict=True))
        self.pending = set(share)

    @classmethod
    async def start(cls, share: list[int], targets: list[Any], op: Any, options: dict[str, Any],
                    sweep: Any) -> _Worker:
        # Pickled before the process starts: an `op` that does not pickle (a closure) starts nothing.
        # Two frames: the caller's import path first, in place before `op` is looked up in its module.
        spec = {"targets": targets, "op": op, "options": options, "sweep": sweep, "levels": _log_levels()}
        frames = b"".join(_FRAME.pack(len(p)) + p for p in (pickle.dumps(list(sys.path)), pickle.dumps(spec)))
        here = str(Path(__file__).resolve().parents[2])  # where this clusterctl is imported from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from clusterctl.redfish.processes import worker_main; worker_main()",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )
        worker = cls(process, share, [t.name for t in targets])
        try:
            assert process.stdin is not None  # noqa: S101 - piped above
            process.stdin.write(frames)
            await process.stdin.drain()
        except BaseException:
            worker.kill()
            await process.wait()
            raise
        return worker

    async def collect(self, on_done: Callable[[int, TargetResult[Any]], None]) -> None:
        """Hand on each result as it arrives; a worker that dies leaves its unfinished targets failed."""
        stdout = self.process.stdout
        assert stdout is not None  # noqa: S101 - piped in start
        while True:  # to the end of its output, so that no log record is left in a full pipe
            try:
                (size,) = _FRAME.unpack(await stdout.readexactly(_FRAME.size))
                message = pickle.loads(await stdout.readexactly(size))  # noqa: S301 - our own worker's output
            except asyncio.IncompleteReadError:
                break
            if message[0] == "result":
                _, j, result = message
                self.pending.discard(self.share[j])
                on_done(self.share[j], result)
            elif message[0] == "log":
                _relog(*message[1:])
        if self.pending:
            code = await self.process.wait()
            why = f"the worker process sweeping it ended (exit code {code}) before its result"
            for i in sorted(self.pending):
                on_done(i, TargetResult(target=self.names[i], error=why, error_type="WorkerDied"))
            self.pending.clear()

    def release(self) -> None:
        """Close the worker's stdin: it winds down (sessions logged out) and exits."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()

    async def reap(self) -> None:
        try:
            await asyncio.wait_for(self.process.wait(), STOP_GRACE_S)
        except TimeoutError:
            self.kill()
            await self.process.wait()

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


# --- in the worker process --------------------------------------------------------------------------
def worker_main() -> None:
    """A worker's life: read its share from stdin, sweep it, send each result to stdout, stop at stdin's EOF."""
    from clusterctl import eventloop

    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the result stream
    stdin = sys.stdin.buffer
    sys.path[:] = _read_frame(stdin)
    spec = _read_frame(stdin)
    lock = threading.Lock()  # the loop and a library's thread may both log

    def send(message: tuple[Any, ...]) -> None:
        payload = pickle.dumps(message)
        with lock:
            out.write(_FRAME.pack(len(payload)) + payload)
            out.flush()

    _forward_logs(send, spec["levels"])

    def done(j: int, result: TargetResult[Any]) -> None:
        try:
            send(("result", j, result))
        except (TypeError, AttributeError, ValueError, pickle.PicklingError) as exc:  # a value that does not pickle
            failed: TargetResult[Any] = TargetResult(
                result.target, error=f"result could not be sent back: {exc}", error_type=type(exc).__name__,
                seconds=result.seconds)
            send(("result", j, failed))

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - inside the loop
        loop = asyncio.get_running_loop()

        def stop() -> None:  # stdin is readable only at EOF now: the caller is done, cancelled or gone
            loop.remove_reader(stdin.fileno())
            task.cancel()

        loop.add_reader(stdin.fileno(), stop)
        try:
            await spec["sweep"](spec["targets"], spec["op"], on_done=done, **spec["options"])
        except asyncio.CancelledError:
            # Each client's logout runs shielded in a task of its own; let those finish before the loop ends.
            others = asyncio.all_tasks() - {task}
            if others:
                await asyncio.wait(others, timeout=STOP_GRACE_S / 2)
            raise

    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt, BrokenPipeError):
        eventloop.run(main())


def _read_frame(stream: IO[bytes]) -> Any:
    (size,) = _FRAME.unpack(stream.read(_FRAME.size))
    return pickle.loads(stream.read(size))  # noqa: S301 - written by our own caller


def _log_levels() -> dict[str, int]:
    """The caller's levels (log.setup's), so a worker logs what the caller would and no more."""
    loggers = logging.root.manager.loggerDict.items()
    levels = {name: lg.level for name, lg in loggers if isinstance(lg, logging.Logger) and lg.level}
    return {"": logging.root.level, **levels}


class _Forward(logging.Handler):
    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            # Masked here too: the caller masks what it knows, but a session token exists only here.
            self._send(("log", record.name, record.levelno, log.scrub(text)))
        except Exception:  # noqa: BLE001 - logging must never break the sweep
            self.handleError(record)


def _forward_logs(send: Callable[[tuple[Any, ...]], None], levels: dict[str, int]) -> None:
    root = logging.getLogger()
    root.handlers[:] = [_Forward(send)]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _relog(name: str, level: int, text: str) -> None:
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        logger.handle(logging.LogRecord(name, level, "(fleet worker)", 0, "%s", (text,), None))
