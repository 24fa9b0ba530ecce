"""The fleet-wide commands' event loop: uvloop where installed, and the same results either way."""

from __future__ import annotations

import asyncio

import pytest

from clusterctl import eventloop


async def _loop_and_answer() -> tuple[str, int]:
    await asyncio.sleep(0)
    answer = await asyncio.to_thread(lambda: 42)  # the journal's writer thread and ansible-runner use threads
    return type(asyncio.get_running_loop()).__module__, answer


def test_runs_on_uvloop_on_linux() -> None:  # a dependency wherever it builds (not Windows)
    module, answer = eventloop.run(_loop_and_answer())
    assert module.startswith("uvloop") and answer == 42


def test_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventloop, "loop_factory", lambda: None)
    module, answer = eventloop.run(_loop_and_answer())
    assert module.startswith("asyncio") and answer == 42
