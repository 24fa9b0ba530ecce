"""Run one SSH operation on many nodes: each node gets a value or an error, none stops the rest.

paramiko is synchronous, so nodes run in a bounded thread pool; the pool's own semaphore
still caps sessions when several fleets share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from clusterctl import log
from clusterctl.errors import ClusterctlError
from clusterctl.ssh.errors import SSHError
from clusterctl.ssh.target import SSHTarget

T = TypeVar("T")
_log = log.get("ssh.fleet")


@dataclass
class SSHOutcome(Generic[T]):
    node: str
    value: T | None = None
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "ok": self.ok, "value": self.value, "error": self.error,
                "error_type": self.error_type, "seconds": round(self.seconds, 3)}


def run_many(
    targets: Sequence[SSHTarget],
    op: Callable[[SSHTarget], T],
    *,
    max_parallel: int = 32,
    on_done: Callable[[SSHOutcome[T]], None] | None = None,
) -> list[SSHOutcome[T]]:
    """`op(target)` on every target, at most `max_parallel` at once; outcomes in `targets` order."""

    def one(target: SSHTarget) -> SSHOutcome[T]:
        started = time.monotonic()
        outcome: SSHOutcome[T] = SSHOutcome(node=target.name)
        try:
            outcome.value = op(target)
        except SSHError as exc:
            outcome.error, outcome.error_type = exc.reason, type(exc).__name__
        except ClusterctlError as exc:
            outcome.error, outcome.error_type = str(exc), type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - one node's surprise must not stop the fleet
            _log.debug("%s: unexpected %s", target.name, type(exc).__name__, exc_info=True)
            outcome.error, outcome.error_type = f"{type(exc).__name__}: {exc}", type(exc).__name__
        outcome.seconds = time.monotonic() - started
        if on_done is not None:
            on_done(outcome)
        return outcome

    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(targets))),
                            thread_name_prefix="ssh") as pool:
        return list(pool.map(one, targets))
