"""The store's contract, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from clusterctl import log
from clusterctl.errors import StateError
from clusterctl.state import schema
from clusterctl.state.events import follow
from clusterctl.state.records import Failure, Sample
from clusterctl.state.store import Store


def test_opens_an_empty_store_at_the_head_revision(store: Store) -> None:
    with store.engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        tables = set(sa.inspect(conn).get_table_names())
    assert version == schema.HEAD_REVISION
    assert set(schema.metadata.tables) <= tables


def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, schema.metadata)
    assert diff == []


def test_head_constant_is_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from clusterctl.state.migrate import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [schema.HEAD_REVISION]


def test_reopening_keeps_data_and_does_not_import_alembic(store_url: str) -> None:
    with Store.open(store_url) as first:
        run_id = first.start_run("provision")
    probe = (
        "import sys; from clusterctl.state.store import Store; "
        f"s = Store.open({store_url!r}); print(len(s.runs()), 'alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.split() == ["1", "False"]
    with Store.open(store_url) as again:
        assert [r.id for r in again.runs()] == [run_id]


def test_processes_opening_a_new_store_at_once_migrate_it_once(store_url: str) -> None:
    probe = f"from clusterctl.state.store import Store; Store.open({store_url!r}).start_run('x')"
    procs = [subprocess.Popen([sys.executable, "-c", probe], stderr=subprocess.PIPE) for _ in range(3)]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with Store.open(store_url) as store:
        assert len(store.runs()) == 3


def test_a_store_from_a_newer_clusterctl_is_refused(store_url: str) -> None:
    with Store.open(store_url) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StateError, match="newer than this clusterctl"):
        Store.open(store_url)


def test_set_stage_writes_the_row_and_its_event_together(store: Store) -> None:
    run_id = store.start_run("provision")
    first = store.set_stage("gpu01", "bios", "running", run_id=run_id)
    second = store.set_stage("gpu01", "bios", "failed", run_id=run_id, reason="attr mismatch",
                             detail={"attr": "SriovGlobalEnable"})
    (row,) = store.node_stages("gpu01")
    assert (row.status, row.reason, row.detail, row.attempt, row.event_id) == (
        "failed", "attr mismatch", {"attr": "SriovGlobalEnable"}, 1, second)
    kinds = [(e.id, e.kind, e.node, e.stage) for e in store.events(node="gpu01")]
    assert kinds == [(first, "stage.running", "gpu01", "bios"), (second, "stage.failed", "gpu01", "bios")]
    store.set_stage("gpu01", "bios", "running", run_id=run_id)
    assert store.node_stages("gpu01")[0].attempt == 2  # a retry counts as a second start
    assert store.node_stages("gpu01")[0].reason is None


def test_a_failed_transaction_leaves_nothing_behind(store: Store) -> None:
    run_id = store.start_run("provision")
    before = store.last_event_id()
    with pytest.raises(StateError, match="refused a write"), store.transaction() as tx:
        tx.set_stage("gpu01", "bios", "running", run_id=run_id)
        tx.event("note", node="gpu01")
        tx.set_stage("gpu02", "bios", "running", run_id=run_id + 1000)  # no such run: foreign key
    assert store.node_stages() == []
    assert store.events(before) == []
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.set_stage("gpu03", "bios", "done", run_id=run_id)
        raise RuntimeError("the caller failed half-way")
    assert store.node_stages() == []


def test_event_ids_increase_in_write_order(store: Store) -> None:
    run_id = store.start_run("validate")
    written = []
    for i in range(5):
        with store.transaction() as tx:
            written += [tx.event("tick", run_id=run_id, payload={"i": i, "j": j}) for j in range(3)]
        written += store.set_stages([f"n{k}" for k in range(4)], "os", "done", run_id=run_id)
    assert written == sorted(written) and len(set(written)) == len(written)
    events = store.events(written[0] - 1)
    assert [e.id for e in events] == written
    ticks = [(e.payload["i"], e.payload["j"]) for e in events if e.kind == "tick"]
    assert ticks == [(i, j) for i in range(5) for j in range(3)]


def test_concurrent_writers_never_hide_an_event_from_a_follower(store: Store) -> None:
    """Ids follow commit order, so polling `id > last seen` sees every event exactly once."""
    writers, each = 4, 40

    def write(w: int) -> None:
        for i in range(each):
            with store.transaction() as tx:
                tx.event("tick", node=f"w{w}", payload={"i": i})
                tx.event("tock", node=f"w{w}", payload={"i": i})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    seen: list[int] = []
    last, deadline = 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        writing = any(t.is_alive() for t in threads)
        batch = store.events(last)
        seen += [e.id for e in batch]
        last = batch[-1].id if batch else last
        if not writing and not batch:
            break  # the writers had finished before this read, and it found nothing new
    for t in threads:
        t.join(timeout=60)
    assert len(seen) == len(set(seen)) == writers * each * 2
    assert sorted(seen) == [e.id for e in store.events()]


def test_summary_and_failing_per_run(store: Store) -> None:
    old = store.start_run("provision")
    store.set_stages(["gpu01", "gpu02", "gpu03"], "discover", "done", run_id=old)
    new = store.start_run("provision")
    store.set_stages(["gpu01", "gpu02", "gpu03"], "bios", "running", run_id=new)
    store.set_stage("gpu02", "bios", "failed", run_id=new, reason="BMC unreachable")
    store.set_stage("gpu03", "bios", "skipped", run_id=new)
    store.set_stage("gpu01", "firmware", "pending", run_id=new)
    assert store.stage_summary() == {
        "discover": {"done": 3},
        "bios": {"running": 1, "failed": 1, "skipped": 1},
        "firmware": {"pending": 1},
    }
    assert list(store.stage_summary()) == ["discover", "bios", "firmware"]  # the order stages were reached
    assert store.stage_summary(run_id=old) == {"discover": {"done": 3}}
    assert store.failing() == [Failure("gpu02", "bios", "BMC unreachable")]
    assert store.failing(run_id=old) == []
    assert store.latest_run("provision").id == new  # type: ignore[union-attr]
    assert store.latest_run("burnin") is None
    assert [r.id for r in store.runs(limit=1)] == [new]


def test_event_filters(store: Store) -> None:
    a, b = store.start_run("provision"), store.start_run("validate")
    store.set_stages(["gpu01", "gpu02", "gpu03"], "bios", "running", run_id=a)
    store.set_stage("gpu02", "os", "done", run_id=b)
    store.event("note", node="gpu03", stage="bios", run_id=b, payload={"text": "hello"})
    assert [e.node for e in store.events(node="gpu02")] == ["gpu02", "gpu02"]
    assert {e.node for e in store.events(node=["gpu01", "gpu03"])} == {"gpu01", "gpu03"}
    assert [e.kind for e in store.events(stage="os")] == ["stage.done"]
    assert [e.kind for e in store.events(run_id=b)] == ["run.started", "stage.done", "note"]
    assert [e.kind for e in store.events(kind="note")] == ["note"]
    everything = store.events()
    assert [e.id for e in store.events(everything[2].id)] == [e.id for e in everything[3:]]
    assert [e.id for e in store.events(limit=2)] == [e.id for e in everything[:2]]
    assert [e.id for e in store.events(limit=2, newest=True)] == [e.id for e in everything[-2:]]


def test_secrets_never_reach_the_database(store: Store) -> None:
    log.redact("Zq9-resolved-bmc-secret")
    run_id = store.start_run("provision", args={"bmc_password": "hunter22", "user": "root"})
    store.set_stage("gpu01", "bios", "failed", run_id=run_id,
                    reason="login with Zq9-resolved-bmc-secret refused",
                    detail={"request": {"X-Auth-Token": "tok-123456", "Password": "hunter22"}})
    store.event("bmc.reply", node="gpu01", payload={"body": "Authorization: Basic dXNlcjpodW50ZXIy"})
    store.record_check("gpu01", "bmc", "fail", detail="password=hunter22 rejected")
    with store.engine.connect() as conn:
        dump = " ".join(
            str(row) for table in schema.metadata.sorted_tables for row in conn.execute(sa.select(table))
        )
    for secret in ("hunter22", "Zq9-resolved-bmc-secret", "tok-123456", "dXNlcjpodW50ZXIy"):
        assert secret not in dump
    assert store.runs()[0].args == {"bmc_password": log.MASK, "user": "root"}  # the rest is kept


def test_checks_telemetry_burnin_and_flags(store: Store) -> None:
    run_id = store.start_run("validate")
    store.record_check("gpu01", "gpu_count", "pass", run_id=run_id, data={"found": 8})
    store.record_check("gpu01", "xid", "fail", run_id=run_id, detail="XID 79", data={"xid": [79]})
    assert [(c.check, c.status, c.data) for c in store.checks("gpu01")] == [
        ("gpu_count", "pass", {"found": 8}), ("xid", "fail", {"xid": [79]})]
    with pytest.raises(ValueError):
        store.record_check("gpu01", "xid", "maybe")

    t0 = 1_700_000_000.0
    samples = [Sample("gpu01", "gpu_temp_c", 40.0 + i, ts=t0 + i, labels={"gpu": i % 2}) for i in range(100)]
    samples.append(Sample("gpu01", "gpu_temp_c", math.nan, ts=t0 + 200))
    assert store.record_telemetry(samples) == 101
    got = store.telemetry("gpu01", "gpu_temp_c", since=t0 + 98)
    assert [(s.value, s.ts, s.labels) for s in got] == [
        (138.0, t0 + 98, {"gpu": 0}), (139.0, t0 + 99, {"gpu": 1}), (None, t0 + 200, None)]
    assert store.telemetry("gpu01", "power_w") == []

    store.record_burnin("gpu01", "fail", run_id=run_id, reasons=["tokens/s 31% below peers"],
                        metrics={"tokens_per_s": 1.2e5})
    (result,) = store.burnin(run_id)
    assert (result.node, result.status, result.reasons, result.metrics) == (
        "gpu01", "fail", ["tokens/s 31% below peers"], {"tokens_per_s": 1.2e5})

    store.set_flag("gpu01", quarantined=True, reason="burn-in failed", source="burnin")
    store.set_flag("gpu02", quarantined=True, reason="XID 79", source="validate")
    store.set_flag("gpu02", quarantined=False, reason="GPU replaced", source="operator")
    assert [(f.node, f.reason) for f in store.flags(quarantined_only=True)] == [("gpu01", "burn-in failed")]
    assert [f.quarantined for f in store.flags()] == [True, False]
    assert [e.kind for e in store.events(node="gpu02")] == ["flag.quarantined", "flag.cleared"]


def test_runs_finish_with_a_status_and_summary(store: Store) -> None:
    run_id = store.start_run("burnin", inventory="inventories/site.yaml", args={"limit": "gpu[01-04]"})
    store.finish_run(run_id, "succeeded", {"passed": 4})
    run = store.run(run_id)
    assert run is not None and (run.status, run.summary, run.inventory) == (
        "succeeded", {"passed": 4}, "inventories/site.yaml")
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert [e.kind for e in store.events(run_id=run_id)] == ["run.started", "run.succeeded"]
    with pytest.raises(StateError, match="no run"):
        store.finish_run(run_id + 1, "failed")
    with pytest.raises(ValueError):
        store.finish_run(run_id, "exploded")


def test_follow_sees_events_committed_after_it_started(store: Store) -> None:
    store.event("before")
    start = store.last_event_id()
    writer = threading.Timer(0.2, lambda: store.event("later", node="gpu09"))
    writer.start()
    began = time.monotonic()
    got = [e.kind for e in follow(store, after_id=start, timeout=0.8, interval=0.05)]
    writer.join(timeout=10)
    assert got == ["later"]
    assert 0.7 < time.monotonic() - began < 10


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://root@localhost/x", "unsupported state URL"),
        ("not a url", "cannot parse state URL"),
    ],
)
def test_bad_urls_are_one_line_errors(url: str, message: str) -> None:
    with pytest.raises(StateError, match=message):
        Store.open(url)


def test_unreachable_postgres_is_a_state_error_without_the_password() -> None:
    with socket_closed_port() as port, pytest.raises(StateError) as caught:
        Store.open(f"postgresql://admin:pw-9f8e7d@127.0.0.1:{port}/state")
    assert "pw-9f8e7d" not in str(caught.value)
    assert "cannot open the state store" in str(caught.value) and "\n" not in str(caught.value)


def socket_closed_port():  # noqa: ANN201
    import contextlib
    import socket

    @contextlib.contextmanager
    def port():  # noqa: ANN202
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
            yield s.getsockname()[1]

    return port()
