"""LongRuns against real sshd hosts: many long commands from one thread, failures per node, caps, stop."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import threading
import time
from pathlib import Path

import pytest
from support.sshd import SSHFleet, fleet_fixture

from clusterctl.ssh.longrun import HELPER_THREADS, LongRuns

fleet = fleet_fixture("longrun", count=3, subnet=79)


def _finish(runs: LongRuns, limit: float = 30.0) -> None:
    assert runs.wait(limit), "the commands did not end"


def test_commands_that_wait_for_each_other_all_run_beyond_the_start_limit(fleet: SSHFleet, tmp_path: Path) -> None:
    # A barrier like torchrun's static rendezvous: nobody finishes until all 9 started. Two at a time
    # in a pool of blocking calls would deadlock; LongRuns bounds only the starting.
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    targets = [dataclasses.replace(t, name=f"{t.name}-{i}") for t in fleet.targets() for i in range(3)]
    script = (f"touch {barrier}/$ME; n=0; while [ $(ls {barrier} | wc -l) -lt 9 ] && [ $n -lt 300 ]; "
              "do sleep 0.05; n=$((n+1)); done; ls " + str(barrier) + " | wc -l; echo err >&2")
    before = threading.active_count()
    runs = LongRuns(max_starting=2)
    runs.start([(t, ["sh", "-c", script], {"ME": t.name}) for t in targets], timeout=30)
    most = before
    while not runs.wait(0.02):
        most = max(most, threading.active_count())
    # One thread follows all nine (asyncssh's few option-preparing helpers aside), whatever their number.
    assert most <= before + 1 + HELPER_THREADS
    assert runs.started() and not runs.start_failures()
    got = runs.snapshot()
    assert {n: (r.state, r.exit_status, bytes(r.stdout).strip(), bytes(r.stderr)) for n, r in got.items()} == {
        t.name: ("done", 0, b"9", b"err\n") for t in targets}
    runs.stop()
    assert threading.active_count() <= before


def test_unreachable_and_unknown_hosts_fail_alone(fleet: SSHFleet, tmp_path: Path) -> None:
    good, second, third = fleet.targets()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    closed = dataclasses.replace(second, name="gone", address="127.0.79.200")
    unknown = dataclasses.replace(third, known_hosts=empty)
    runs = LongRuns(connect_timeout=3)
    runs.start([(t, ["sh", "-c", "exit 3"], None) for t in (good, closed, unknown)], timeout=20)
    _finish(runs)
    failures = runs.start_failures()
    assert {n: r.error_type for n, r in failures.items()} == {"gone": "SSHUnreachable", third.name: "SSHHostKeyError"}
    assert "cannot connect to 127.0.79.200" in (failures["gone"].error or "")
    assert runs.snapshot()[good.name].exit_status == 3
    runs.stop()


def test_output_is_capped_per_stream(fleet: SSHFleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clusterctl.ssh.longrun.MAX_OUTPUT", 100_000)
    runs = LongRuns()
    runs.start([(fleet.targets()[0], ["head", "-c", "1000000", "/dev/zero"], None)], timeout=20)
    _finish(runs)
    run = next(iter(runs.snapshot().values()))
    assert run.state == "failed" and run.error_type == "SSHBadOutput" and run.started
    runs.stop()


def test_deadline_then_stop_ends_the_remote_command(fleet: SSHFleet) -> None:
    runs = LongRuns()
    # The hosts share this machine: the remote process is visible here. The kill pattern does not match itself.
    runs.start([(fleet.targets()[1], ["sleep", "37.25"], None)], timeout=1.0)
    _finish(runs, 10)
    run = next(iter(runs.snapshot().values()))
    assert (run.state, run.error_type) == ("failed", "SSHCommandTimeout")
    assert subprocess.run(["pgrep", "-f", "sleep 37.25"], capture_output=True, check=False).returncode == 0
    runs.stop(lambda node: ["pkill", "-f", "sleep 37[.]25"])
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-f", "sleep 37.25"], capture_output=True, check=False).returncode == 0:
        assert time.monotonic() < deadline, "the remote command still runs"
        time.sleep(0.1)



def test_each_command_has_its_timeout_from_its_own_start(fleet: SSHFleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections that take 0.7 s each, one at a time (12,500 SSH handshakes on a busy controller), so the
    sixth command starts 3.5 s into the batch; each has 3 s from its own start and needs 0.5 s. A
    deadline shared from the batch's start cut 10,535 of 12,500 nodes off a site's burn-in."""
    slow = LongRuns._connect

    async def slow_connect(self: LongRuns, target):  # noqa: ANN001, ANN202
        await asyncio.sleep(0.7)
        return await slow(self, target)

    monkeypatch.setattr(LongRuns, "_connect", slow_connect)
    targets = [dataclasses.replace(t, name=f"{t.name}-{i}") for t in fleet.targets() for i in range(2)]
    runs = LongRuns(max_starting=1)
    began = time.monotonic()
    runs.start([(t, ["sleep", "0.5"], None) for t in targets], timeout=3.0)
    _finish(runs)
    assert time.monotonic() - began > 3.0 + 0.5  # the batch outlasted one command's timeout ...
    assert {n: (r.state, r.exit_status) for n, r in runs.snapshot().items()} == {  # ... and none timed out
        t.name: ("done", 0) for t in targets}
    runs.stop()
