"""One way to run the fleet-wide async commands: on uvloop where it is installed.

A sweep or a provisioning run of thousands of BMCs is bound by the controller's CPU, and much of
that went to asyncio's pure-Python TLS and transport layers; uvloop does that work in C. Where
uvloop is missing (it has no Windows build), the standard loop runs the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop when available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
