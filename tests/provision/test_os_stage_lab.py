"""The `os` stage on the lab's SSH nodes: playbooks/site.yml through ansible-runner, one run per batch.

A `kill -9` lands while a batch is running; the same command then runs the playbook only on the nodes
without an outcome, and per-host outcomes (ok / failed / unreachable, failing task and message) come
from ansible-runner's event stream into the journal. gpu0002 is listed with another host's key
(unreachable); gpu0005's root holds a file where /etc should be (failed at its first write).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from support.ports import free_port
from support.provision_lab import Lab, assert_journal_complete, open_store

NODES = [f"gpu{i:04d}" for i in range(1, 6)]
BATCH = ["--os-batch", "2", "--os-batch-window", "0.3", "--forks", "2"]


def up_with_ssh(lab: Lab, tmp_path: Path) -> None:
    port = free_port("127.2.0.1")
    code, up, err = lab.cli("-o", "json", "lab", "up", "--nodes", str(len(NODES)), "--port", str(lab.port),
                            "--ssh-port", str(port), "--latency-ms", "0", "--time-scale", "2000")
    assert code == 0, err
    assert up.get("ssh_port") == port, up
    # gpu0002's address listed with another host's key: the key gpu0002 presents will not match.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True,
                   timeout=30)
    other_key = (tmp_path / "other.pub").read_text().split()[:2]
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.2.0.2]:{port} {' '.join(other_key)}\n")
    text = Path(up["inventory"]).read_text().replace("port: 8443", f"port: {lab.port}")
    text = text.replace("port: 2222", f"port: {port}")
    text += f"    overrides:\n      gpu0002: {{ssh: {{known_hosts: {json.dumps(str(wrong))}}}}}\n"
    lab.inventory.write_text(text)
    # gpu0005's root has a file where /etc should be: its first write fails (root ignores permissions).
    root = lab.dir / "nodes" / "gpu0005" / "root"
    root.mkdir(parents=True, exist_ok=True)
    (root / "etc").write_text("not a directory\n")


def provision_os(lab: Lab) -> subprocess.Popen[bytes]:
    return lab.provision_process("--stages", "os", *BATCH)


def outcomes(run_id: int | None = None) -> dict[str, str]:
    store = open_store()
    try:
        return {e.node: e.payload["result"] for e in store.events(kind="os.outcome", run_id=run_id)}
    finally:
        store.close()


def open_intents() -> set[str]:
    store = open_store()
    try:
        open_ = set()
        for e in store.events(stage="os"):
            if e.kind == "os.intent":
                open_.add(e.node)
            elif e.kind == "os.outcome":
                open_.discard(e.node)
        return open_
    finally:
        store.close()


def ansible_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "ansible-playbook" in cmdline and marker in cmdline:
                found.append(int(entry.name))
    return found


def test_batched_playbook_runs_resume_after_kill_nine(lab: Lab, tmp_path: Path) -> None:
    up_with_ssh(lab, tmp_path)
    first = provision_os(lab)
    try:
        deadline = time.monotonic() + 240
        while not ("ok" in outcomes().values() and open_intents()):
            assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
            assert time.monotonic() < deadline, "no batch finished while another was running"
            time.sleep(0.1)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    before = outcomes()
    finished = {n for n, result in before.items() if result == "ok"}
    # The killed controller's ansible-playbook goes with it (its pty closes): nothing keeps changing nodes.
    home = os.environ["XDG_STATE_HOME"]
    deadline = time.monotonic() + 30
    while ansible_processes(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ansible_processes(home) == []

    code, summary, err = lab.provision("--stages", "os", *BATCH)
    assert code == 1, err
    store = open_store()
    try:
        second = store.latest_run("provision")
        assert second is not None
        rerun = {h for e in store.events(kind="os.batch", run_id=second.id) for h in e.payload["hosts"]}
        assert all(len(e.payload["hosts"]) <= 2 for e in store.events(kind="os.batch", run_id=second.id))
    finally:
        store.close()
    assert rerun == set(NODES) - finished  # only the nodes without an ok outcome ran again
    failed = {f["node"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {"gpu0002", "gpu0005"}
    assert failed["gpu0002"].startswith("playbooks/site.yml unreachable at task 'Gather the hardware facts")
    assert "host key verification failed" in failed["gpu0002"].lower()
    assert failed["gpu0005"].startswith("playbooks/site.yml failed at task 'Blacklist nouveau': ")
    assert len(failed["gpu0005"]) > len("playbooks/site.yml failed at task 'Blacklist nouveau': ") + 10
    assert summary["ready"] == 3

    code, summary, err = lab.provision("--stages", "os", *BATCH)
    assert code == 1, err
    store = open_store()
    try:
        third = store.latest_run("provision")
        assert third is not None
        hosts = sorted(h for e in store.events(kind="os.batch", run_id=third.id) for h in e.payload["hosts"])
        assert hosts == ["gpu0002", "gpu0005"]  # the ok ones are done without a run
        rows = {r.node: (r.status, r.reason) for r in store.node_stages() if r.stage == "os"}
        assert rows["gpu0001"] == ("done", "playbook already applied (same playbooks and variables)")
        assert_journal_complete(store)
    finally:
        store.close()

    code, summary, err = lab.provision("--stages", "os", "--reapply", "--limit", "gpu000[1,3]", *BATCH)
    assert code == 0, err
    store = open_store()
    try:
        fourth = store.latest_run("provision")
        assert fourth is not None
        hosts = sorted(h for e in store.events(kind="os.batch", run_id=fourth.id) for h in e.payload["hosts"])
        assert hosts == ["gpu0001", "gpu0003"]  # --reapply: run again although the journal says applied
        assert_journal_complete(store)
    finally:
        store.close()
