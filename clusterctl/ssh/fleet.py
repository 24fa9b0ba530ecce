"""Run one SSH operation on many nodes: each node gets a value or an error, none stops the rest.

paramiko is synchronous, so nodes run in a bounded thread pool; the pool's own semaphore
still caps sessions when several fleets share it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from clusterctl import log
from clusterctl.errors import ClusterctlError
from clusterctl.fanout import TargetResult, recording
from clusterctl.ssh.errors import SSHError
from clusterctl.ssh.target import SSHTarget

T = TypeVar("T")
_log = log.get("ssh.fleet")


def run_many(
    targets: Sequence[SSHTarget],
    op: Callable[[SSHTarget], T],
    *,
    max_parallel: int = 32,
    on_done: Callable[[TargetResult[T]], None] | None = None,
) -> list[TargetResult[T]]:
    """`op(target)` on every target, at most `max_parallel` at once; results in `targets` order."""

    def one(target: SSHTarget) -> TargetResult[T]:
        result: TargetResult[T] = TargetResult(target.name)
        with recording(result, _log, _describe):
            result.value = op(target)
        if on_done is not None:
            on_done(result)
        return result

    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(targets))),
                            thread_name_prefix="ssh") as pool:
        return list(pool.map(one, targets))


def _describe(exc: ClusterctlError) -> str:
    """An SSH error's message without the node's name: the result already names it."""
    return exc.reason if isinstance(exc, SSHError) else str(exc)
