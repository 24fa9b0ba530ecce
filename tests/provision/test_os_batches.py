"""How nodes reaching `os` are grouped into ansible-runner runs, and what the journal holds around each run.

The runner handed to `Batches` stands in for ansible-runner here (the real one runs in
test_os_stage_lab.py against the lab's SSH nodes); the journal and the store are real.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from clusterctl.inventory import Node, load_inventory
from clusterctl.provision.journal import Journal
from clusterctl.provision.stages.os.ansible import HostOutcome
from clusterctl.provision.stages.os.batches import KEY, STAGE, Batches, BatchPolicy, playbook_digest
from clusterctl.sim.inventory import render_lab_inventory
from clusterctl.state.store import Store


def lab_nodes(tmp_path: Path, count: int) -> list[Node]:
    path = tmp_path / "inv.yaml"
    path.write_text(render_lab_inventory(count, tmp_path))
    return load_inventory(path).select(None)


class Recorder:
    """A runner that records each call and what the store held when it was called."""

    def __init__(self, store: Store, *, seconds: float = 0.2, verdicts: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.seconds = seconds
        self.verdicts = dict(verdicts or {})
        self.calls: list[list[str]] = []
        self.concurrent = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.seen_before: list[tuple[set[str], set[str]]] = []

    def __call__(self, nodes: list[Node], cancel: threading.Event) -> dict[str, HostOutcome]:
        names = [n.name for n in nodes]
        intents = {e.node for e in self.store.events(kind="os.intent") if e.node in names}
        outcomes = {e.node for e in self.store.events(kind="os.outcome") if e.node in names}
        with self.lock:
            self.calls.append(names)
            self.seen_before.append((intents, outcomes))
            self.concurrent += 1
            self.peak = max(self.peak, self.concurrent)
        try:
            cancel.wait(self.seconds)
            if cancel.is_set():
                return {n: HostOutcome(n, "failed", message="the playbook run was cancelled") for n in names}
            result = {}
            for name in names:
                verdict = self.verdicts.get(name, "ok")
                result[name] = HostOutcome(name, verdict, tasks_ok=3, changed=1, failed_task=(
                    None if verdict == "ok" else "Gather the hardware facts that guard the roles"),
                    message=None if verdict == "ok" else "Host key verification failed.")
            return result
        finally:
            with self.lock:
                self.concurrent -= 1


async def arrive(batches: Batches, nodes: list[Node], gaps: list[float]) -> dict[str, HostOutcome]:
    """Nodes reaching `os` one after another, `gaps[i]` seconds apart."""

    async def one(node: Node, delay: float) -> tuple[str, HostOutcome]:
        await asyncio.sleep(delay)
        return node.name, await batches.submit(node, f"fp-{node.name}")

    delays = [sum(gaps[: i + 1]) for i in range(len(nodes))]
    return dict(await asyncio.gather(*(one(n, d) for n, d in zip(nodes, delays, strict=True))))


def run_with_journal(store: Store, scenario) -> object:  # noqa: ANN001
    async def main() -> object:
        run_id = store.start_run("provision")
        async with Journal(store, run_id) as journal:
            return await scenario(journal)

    return asyncio.run(main())


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def test_nodes_arriving_within_the_window_share_one_run(tmp_path: Path, store: Store) -> None:
    nodes = lab_nodes(tmp_path, 6)
    runner = Recorder(store, verdicts={"gpu0003": "unreachable", "gpu0005": "failed"})

    async def scenario(journal: Journal) -> dict[str, HostOutcome]:
        batches = Batches(journal, runner, BatchPolicy(window_s=0.5, max_batch=50, forks=10, parallel=2))
        # Four arrive within half a second; two more come well after the first run started.
        return await arrive(batches, nodes, [0.0, 0.1, 0.1, 0.1, 1.0, 0.05])

    outcomes = run_with_journal(store, scenario)
    assert runner.calls == [["gpu0001", "gpu0002", "gpu0003", "gpu0004"], ["gpu0005", "gpu0006"]]
    # Intents committed before each run, no outcome yet; outcomes after, one per node, with the failing task.
    for names, (intents, done) in zip(runner.calls, runner.seen_before, strict=True):
        assert intents == set(names) and done == set()
    recorded = {e.node: e.payload for e in store.events(kind="os.outcome")}
    assert {n: p["result"] for n, p in recorded.items()} == {
        "gpu0001": "ok", "gpu0002": "ok", "gpu0003": "unreachable", "gpu0004": "ok", "gpu0005": "failed",
        "gpu0006": "ok"}
    assert recorded["gpu0003"]["failed_task"] == "Gather the hardware facts that guard the roles"
    assert recorded["gpu0003"]["message"] == "Host key verification failed."
    assert recorded["gpu0001"]["fingerprint"] == "fp-gpu0001" and recorded["gpu0006"]["batch"] == 2
    assert {n: o.status for n, o in outcomes.items()}["gpu0005"] == "failed"
    (first, second) = [e.payload for e in store.events(kind="os.batch")]
    assert first["hosts"] == runner.calls[0] and first["forks"] == 4 and second["batch"] == 2


def test_batches_are_bounded_in_size_and_in_runs_at_once(tmp_path: Path, store: Store) -> None:
    nodes = lab_nodes(tmp_path, 23)
    runner = Recorder(store, seconds=0.3)

    async def scenario(journal: Journal) -> list[int]:
        batches = Batches(journal, runner, BatchPolicy(window_s=5.0, max_batch=5, forks=3, parallel=2))
        started = time.monotonic()
        await arrive(batches, nodes, [0.0] * 23)
        assert time.monotonic() - started < 4.0  # full batches start at once, not after the window
        return batches.sizes

    sizes = run_with_journal(store, scenario)
    assert sizes == [5, 5, 5, 5, 3]
    assert runner.peak == 2
    assert sorted(n for call in runner.calls for n in call) == [n.name for n in nodes]


def test_a_node_cancelled_while_waiting_leaves_its_batch(tmp_path: Path, store: Store) -> None:
    nodes = lab_nodes(tmp_path, 3)
    runner = Recorder(store, seconds=0.1)

    async def scenario(journal: Journal) -> None:
        batches = Batches(journal, runner, BatchPolicy(window_s=0.3, max_batch=10, forks=5, parallel=1))
        tasks = [asyncio.ensure_future(batches.submit(n, "fp")) for n in nodes]
        await asyncio.sleep(0.05)
        tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)

    run_with_journal(store, scenario)
    assert runner.calls == [["gpu0001", "gpu0003"]]
    assert not store.events(node="gpu0002", kind="os.intent")


def test_a_run_whose_nodes_are_all_cancelled_is_told_to_stop(tmp_path: Path, store: Store) -> None:
    nodes = lab_nodes(tmp_path, 2)
    runner = Recorder(store, seconds=30)

    async def scenario(journal: Journal) -> float:
        batches = Batches(journal, runner, BatchPolicy(window_s=0.0, max_batch=10, forks=5, parallel=1))
        tasks = [asyncio.ensure_future(batches.submit(n, "fp")) for n in nodes]
        while not runner.calls:
            await asyncio.sleep(0.02)
        started = time.monotonic()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        while batches._tasks:  # the run ends (cancelled), its outcomes are recorded
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    assert run_with_journal(store, scenario) < 10
    results = {e.node: e.payload["result"] for e in store.events(kind="os.outcome")}
    assert results == {"gpu0001": "failed", "gpu0002": "failed"}


def test_the_playbook_digest_follows_every_file(tmp_path: Path) -> None:
    book = tmp_path / "playbooks"
    (book / "roles" / "a" / "tasks").mkdir(parents=True)
    (book / "site.yml").write_text("- hosts: all\n")
    task = book / "roles" / "a" / "tasks" / "main.yml"
    task.write_text("- name: One\n")
    first = playbook_digest(book / "site.yml")
    assert playbook_digest(book / "site.yml") == first
    task.write_text("- name: Two\n")
    assert playbook_digest(book / "site.yml") != first
    assert (STAGE, KEY) == ("os", "playbook")
