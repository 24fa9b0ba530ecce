"""`clusterctl status` and `clusterctl events` over a real store, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterctl.cli.main import run
from clusterctl.state.store import Store


@pytest.fixture
def fleet(store_url: str) -> Iterator[tuple[str, int, int]]:
    """Two runs: discover done everywhere, then bios with two failures and one node still running."""
    with Store.open(store_url) as store:
        old = store.start_run("provision")
        store.set_stages([f"gpu{i:02d}" for i in range(1, 5)], "discover", "done", run_id=old)
        new = store.start_run("provision")
        store.set_stages([f"gpu{i:02d}" for i in range(1, 5)], "bios", "running", run_id=new)
        store.set_stages(["gpu02", "gpu03"], "bios", "failed", run_id=new, reason="BootMode [Uefi] refused")
        store.set_stage("gpu04", "bios", "done", run_id=new)
        store.set_flag("gpu03", quarantined=True, reason="bios keeps failing", source="operator")
    yield store_url, old, new


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_status_json_counts_failures_and_exit_code(fleet: tuple[str, int, int], capsys) -> None:
    url, old, new = fleet
    assert run(["--state", url, "status", "-o", "json"]) == 1  # nodes have failed
    data = _json(capsys)
    assert data["run"]["id"] == new
    assert list(data["stages"]) == ["discover", "bios"]
    assert data["stages"]["discover"] == {"pending": 0, "running": 0, "done": 4, "failed": 0, "skipped": 0,
                                          "total": 4}
    assert data["stages"]["bios"] == {"pending": 0, "running": 1, "done": 1, "failed": 2, "skipped": 0,
                                      "total": 4}
    assert [(f["node"], f["stage"], f["reason"]) for f in data["failing"]] == [
        ("gpu02", "bios", "BootMode [Uefi] refused"), ("gpu03", "bios", "BootMode [Uefi] refused")]
    assert [q["node"] for q in data["quarantined"]] == ["gpu03"]

    assert run(["--state", url, "-o", "json", "status", "--run", str(old)]) == 0
    data = _json(capsys)
    assert data["run"]["id"] == old and list(data["stages"]) == ["discover"] and data["failing"] == []


def test_status_table_folds_failing_nodes(fleet: tuple[str, int, int], capsys) -> None:
    url, _, _ = fleet
    assert run(["--state", url, "status"]) == 1
    out = capsys.readouterr().out
    assert "gpu[02-03]" in out and "BootMode [Uefi] refused" in out  # data is not eaten as rich markup
    assert "Quarantined: gpu03" in out


def test_status_of_an_empty_store_and_of_an_unknown_run(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'state.db'}"
    assert run(["--state", url, "status"]) == 0
    assert "No node stages recorded yet" in capsys.readouterr().out
    assert run(["--state", url, "status", "--run", "7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no run 7") and err.count("\n") == 1 and "Traceback" not in err


def test_events_json_with_filters(fleet: tuple[str, int, int], capsys) -> None:
    url, old, new = fleet
    assert run(["--state", url, "-o", "json", "events", "--node", "gpu[02-03]", "--stage", "bios"]) == 0
    got = [(e["node"], e["kind"]) for e in _json(capsys)]
    assert got == [("gpu02", "stage.running"), ("gpu03", "stage.running"),
                   ("gpu02", "stage.failed"), ("gpu03", "stage.failed")]
    assert run(["--state", url, "-o", "json", "events", "--run", str(old)]) == 0
    old_events = _json(capsys)
    assert {e["run_id"] for e in old_events} == {old} and len(old_events) == 5
    assert run(["--state", url, "-o", "json", "events", "--limit", "2"]) == 0
    newest = _json(capsys)
    assert [e["kind"] for e in newest] == ["stage.done", "flag.quarantined"]
    since = str(newest[0]["id"] - 1)
    assert run(["--state", url, "-o", "json", "events", "--since", since, "--limit", "1"]) == 0
    assert [e["id"] for e in _json(capsys)] == [newest[0]["id"]]


def test_events_for_people_one_line_each(fleet: tuple[str, int, int], capsys) -> None:
    url, _, new = fleet
    assert run(["--state", url, "events", "--node", "gpu02", "--kind", "stage.failed"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert f"run {new}" in line and "gpu02 bios" in line and '"reason": "BootMode [Uefi] refused"' in line


def test_bad_hostlist_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert run(["--state", f"sqlite:///{tmp_path / 's.db'}", "events", "--node", "gpu[01-"]) == 2
    assert "bad hostlist 'gpu[01-'" in capsys.readouterr().err


def test_follow_timeout_bounds_the_wait(tmp_path: Path, capsys) -> None:
    began = time.monotonic()
    assert run(["--state", f"sqlite:///{tmp_path / 's.db'}", "events", "--follow-timeout", "0.5"]) == 0
    assert 0.4 < time.monotonic() - began < 15
    assert capsys.readouterr().out == ""


def _lines(proc: subprocess.Popen[bytes]) -> queue.Queue[bytes]:
    """The process's stdout lines, read by a thread so a test can wait for one with a timeout."""
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_event(lines: queue.Queue[bytes], timeout: float = 30) -> dict[str, object]:
    line = lines.get(timeout=timeout)
    assert line, "the follower exited"
    return json.loads(line)


def test_follow_prints_events_another_process_writes(store_url: str, clusterctl_bin: list[str]) -> None:
    with Store.open(store_url) as store:
        store.event("hello", node="gpu01")
        env = {**os.environ, "CLUSTERCTL_STATE": store_url}
        proc = subprocess.Popen(
            [*clusterctl_bin, "events", "--follow", "--follow-timeout", "60", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        lines = _lines(proc)
        try:
            assert _next_event(lines)["kind"] == "hello"  # the backlog, then following
            store.set_stage("gpu01", "os", "done", run_id=store.start_run("provision"))
            assert _next_event(lines)["kind"] == "run.started"
            event = _next_event(lines)
            assert (event["kind"], event["node"], event["stage"]) == ("stage.done", "gpu01", "os")
            proc.send_signal(signal.SIGINT)  # Ctrl-C ends a follow normally
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()
            proc.wait(timeout=30)
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("command", ["status", "events"])
def test_help_shows_an_example(command: str, capsys) -> None:
    assert run([command, "--help"]) == 0
    assert f"clusterctl {command}" in capsys.readouterr().out
