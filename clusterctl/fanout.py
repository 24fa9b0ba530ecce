"""One operation fanned out over many targets (BMCs over Redfish, nodes over SSH): what each target got.

Failures are data: a target's error is recorded in its own result and never stops the others,
whichever transport ran the operation, so callers read BMC and node results the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from clusterctl.errors import ClusterctlError

T = TypeVar("T")


@dataclass
class TargetResult(Generic[T]):
    target: str
    value: T | None = None
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self, key: str = "target") -> dict[str, Any]:
        """`key` names the target as the caller's output calls it ("bmc", "node")."""
        return {key: self.target, "ok": self.ok, "value": self.value, "error": self.error,
                "error_type": self.error_type, "seconds": round(self.seconds, 3)}


@contextmanager
def recording(result: TargetResult[Any], log: logging.Logger,
              describe: Callable[[ClusterctlError], str] = str) -> Iterator[TargetResult[Any]]:
    """Run the body for one target: its time and any error land in `result`, and the error stops there."""
    started = time.monotonic()
    try:
        yield result
    except ClusterctlError as exc:
        result.error, result.error_type = describe(exc), type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - one target's surprise must not stop the fan-out
        # The traceback goes to the debug log so a bug in the operation stays findable.
        log.debug("%s: unexpected %s", result.target, type(exc).__name__, exc_info=True)
        result.error, result.error_type = f"{type(exc).__name__}: {exc}", type(exc).__name__
    finally:
        result.seconds = time.monotonic() - started
