"""Killing a writer at any instant leaves the SQLite store consistent and whole."""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS = 8


def _run_and_kill(url: str, delay: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
        time.sleep(delay)
        assert proc.poll() is None, proc.stderr.read().decode()  # still writing when killed
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def test_sigkill_at_random_moments_leaves_a_consistent_store(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for _ in range(KILLS):
        _run_and_kill(f"sqlite:///{path}", rng.uniform(0.02, 0.4))

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []

    events = db.execute(
        "SELECT id, node, stage, kind, json_extract(payload, '$.seq'), json_extract(payload, '$.detail.seq')"
        " FROM events ORDER BY id"
    ).fetchall()
    ids = [e[0] for e in events]
    assert ids == sorted(set(ids))
    seq_of = [e[4] if e[4] is not None else e[5] for e in events if e[3] != "run.started"]
    assert seq_of == sorted(seq_of), f"seed {seed}: events out of write order"
    assert len(set(seq_of)) > KILLS, f"seed {seed}: the writers barely wrote"

    # Every transaction is whole: 3 ticks + 1 stage event + 2 samples, and seqs have no gaps.
    per_seq = Counter(seq_of)
    assert set(per_seq.values()) == {4}, f"seed {seed}: {[s for s, n in per_seq.items() if n != 4][:5]}"
    assert sorted(per_seq) == list(range(len(per_seq)))
    samples = Counter(v for (v,) in db.execute("SELECT value FROM telemetry"))
    assert samples == {float(s): 2 for s in per_seq}

    # Every node_stages row points at the latest stage event for its node and stage.
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    for event_id, node, stage, kind, _, _ in events:
        if kind.startswith("stage."):
            latest[(node, stage)] = (event_id, kind)
    rows = db.execute("SELECT node, stage, status, event_id, json_extract(detail, '$.seq') FROM node_stages")
    rows = rows.fetchall()
    assert len(rows) == len(latest)
    for node, stage, status, event_id, seq in rows:
        assert latest[(node, stage)] == (event_id, f"stage.{status}"), (seed, node, stage)
        assert seq in per_seq
    db.close()
