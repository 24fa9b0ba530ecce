"""Bulk writes (a burn-in's telemetry, a validation's checks) keep every guarantee of single writes."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa
from support.revisions import rewind

from clusterctl import log
from clusterctl.errors import StateError
from clusterctl.state import schema
from clusterctl.state.payloads import Cleaner, clean
from clusterctl.state.records import NewCheck, NewTransition, Sample
from clusterctl.state.store import Store

SECRETS = ("hunter22", "Kx7-bulk-resolved-secret", "tok-98765", "dXNlcjpodW50ZXIy")


def _dump(store: Store) -> str:
    with store.engine.connect() as conn:
        return " ".join(str(row) for table in schema.metadata.sorted_tables for row in conn.execute(sa.select(table)))


def test_bulk_samples_with_secret_looking_payloads_are_scrubbed(store: Store) -> None:
    log.redact("Kx7-bulk-resolved-secret")
    shared = {"rank": 0, "step": 5, "api_key": "hunter22"}  # one dict on many rows, as burn-in writes them
    samples = [Sample(f"gpu{i % 4:02d}", "burnin.tokens_per_s", 1000.0 + i, 1.7e9 + i, shared) for i in range(50)]
    samples += [
        Sample("gpu01", "bmc.power_w", 700, 1.7e9, {"X-Auth-Token": "tok-98765", "ok": True}),
        Sample("gpu01", "bmc.power_w", math.inf, 1.7e9 + 1,
               {"header": "Authorization: Basic dXNlcjpodW50ZXIy", "note": "via Kx7-bulk-resolved-secret"}),
        Sample("gpu01", "bmc.power_w", None, 1.7e9 + 2, {"nested": [{"password": "hunter22"}, "password=hunter22"]}),
        Sample("gpu01", "bmc.power_w", math.nan, 1.7e9 + 3, {"token": 12345678, "step": 1}),
    ]
    assert store.record_telemetry(samples) == 54

    dump = _dump(store)
    for secret in (*SECRETS, "12345678"):
        assert secret not in dump
    assert len(store.telemetry("gpu00", "burnin.tokens_per_s")) == 13
    assert store.telemetry("gpu00", "burnin.tokens_per_s")[0].labels == {"rank": 0, "step": 5, "api_key": log.MASK}
    power = store.telemetry("gpu01", "bmc.power_w")
    assert [s.value for s in power] == [700.0, None, None, None]
    assert power[0].labels == {"X-Auth-Token": log.MASK, "ok": True}
    assert power[2].labels == {"nested": [{"password": log.MASK}, f"password={log.MASK}"]}
    assert power[3].labels == {"token": log.MASK, "step": 1}


def test_bulk_checks_are_scrubbed_and_read_back(store: Store) -> None:
    run_id = store.start_run("validate")
    data = {"rule": "bmc.login", "remediation": None, "data": {"password": "hunter22", "tries": 3}}
    with store.transaction() as tx:
        count = tx.record_checks(
            [NewCheck(f"gpu{i:02d}", "bmc", "fail", detail="password=hunter22 rejected", data=data, ts=1.0 + i)
             for i in range(20)] + [NewCheck("gpu00", "gpu_count", "pass", data={"found": 8}, ts=100.0)],
            run_id=run_id,
        )
    assert count == 21
    assert "hunter22" not in _dump(store)
    checks = store.checks("gpu00", run_id=run_id)
    assert [(c.check, c.status, c.detail) for c in checks] == [
        ("bmc", "fail", f"password={log.MASK} rejected"), ("gpu_count", "pass", None)]
    assert checks[0].data == {"rule": "bmc.login", "remediation": None, "data": {"password": log.MASK, "tries": 3}}
    assert len(store.checks("gpu19")) == 1


def test_a_bad_row_in_a_bulk_write_leaves_nothing_behind(store: Store) -> None:
    run_id = store.start_run("validate")
    with pytest.raises(ValueError), store.transaction() as tx:
        tx.record_telemetry([Sample("gpu01", "temp", 40.0, 1.0)])
        tx.record_checks([NewCheck("gpu01", "a", "pass"), NewCheck("gpu01", "b", "maybe")], run_id=run_id)
    with pytest.raises(StateError), store.transaction() as tx:
        tx.record_checks([NewCheck("gpu01", "a", "pass")], run_id=run_id)
        tx.record_telemetry([Sample("gpu01", "temp", 40.0, 1.0), Sample(None, "temp", 41.0, 2.0)])  # type: ignore[arg-type]
    assert store.checks("gpu01") == []
    assert store.telemetry("gpu01", "temp") == []


def test_the_batch_cleaner_cleans_like_clean() -> None:
    values = [None, True, 3, 2.5, math.nan, "password=hunter22", ("a", 1), {"x_password": 7, "sub": {"k": "v"}},
              {"secret": None, "token": "", "cookie": True, "n": -math.inf}, {1: "one"}]
    cleaner = Cleaner()
    assert [cleaner(v) for v in values * 2] == [clean(v) for v in values * 2]
    assert clean(values[7]) == {"x_password": log.MASK, "sub": {"k": "v"}}
    assert clean(values[8]) == {"secret": None, "token": "", "cookie": True, "n": None}


def test_an_older_store_gains_the_telemetry_metric_index(store_url: str) -> None:
    with Store.open(store_url) as store:
        store.record_telemetry([Sample("gpu01", "temp", 40.0, 1.0)])
        with store.engine.begin() as conn:
            rewind(conn, "0002")
    with Store.open(store_url) as store:
        with store.engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            indexes = {ix["name"]: ix["column_names"] for table in ("telemetry", "checks")
                       for ix in sa.inspect(conn).get_indexes(table)}
        assert version == schema.HEAD_REVISION == "0007"
        assert indexes["ix_telemetry_metric_ts"] == ["metric", "ts"]
        assert indexes["ix_checks_node_check_id"] == ["node", "check", "id"]
        assert indexes["ix_checks_status"] == ["status"]
        assert [s.value for s in store.telemetry("gpu01", "temp")] == [40.0]


def test_a_validation_is_recorded_in_bulk_with_each_nodes_stage_and_event(store: Store) -> None:
    from clusterctl.validate.run import STAGE, FleetReport, record
    from clusterctl.verdict import CheckResult, NodeVerdict

    verdicts = [NodeVerdict(f"gpu{i:02d}", [CheckResult("gpu_count", "pass", "8 GPUs", rule="gpu.count")])
                for i in range(6)]
    verdicts[1].checks.append(CheckResult("xid", "fail", "XID 79", rule="xid", remediation="RMA", data=[79]))
    verdicts[4].checks.append(CheckResult("bmc", "warn", "password=hunter22 is weak", rule="bmc.login"))
    run_id = record(store, FleetReport(verdicts), inventory="site.yaml", args={"bmc_password": "hunter22"})

    assert "hunter22" not in _dump(store)
    assert store.run(run_id).status == "failed"  # type: ignore[union-attr]
    assert [(c.check, c.status, c.data["remediation"]) for c in store.checks("gpu01", run_id=run_id)] == [
        ("gpu_count", "pass", None), ("xid", "fail", "RMA")]
    stages = {s.node: (s.status, s.reason, s.detail) for s in store.node_stages() if s.stage == STAGE}
    assert stages["gpu01"] == ("failed", "xid: XID 79", {"status": "fail"})
    assert stages["gpu04"] == ("done", f"bmc: password={log.MASK} is weak", {"status": "warn"})
    assert stages["gpu05"] == ("done", None, {"status": "pass"})
    kinds = {e.node: e.kind for e in store.events(run_id=run_id, stage=STAGE) if e.kind.startswith("validate.")}
    assert kinds == {"gpu00": "validate.pass", "gpu01": "validate.fail", "gpu02": "validate.pass",
                     "gpu03": "validate.pass", "gpu04": "validate.warn", "gpu05": "validate.pass"}


def test_transitions_of_many_nodes_in_one_statement_keep_their_events_and_attempts(store: Store) -> None:
    run_id = store.start_run("provision")
    log.redact("Kx7-bulk-resolved-secret")
    with store.transaction() as tx:
        tx.record_transitions([NewTransition("gpu01", "bios", "running"),
                               NewTransition("gpu02", "bios", "running")], run_id=run_id)
    with store.transaction() as tx:
        ids = tx.record_transitions([
            NewTransition("gpu01", "bios", "failed", reason="job failed: Kx7-bulk-resolved-secret"),
            NewTransition("gpu02", "bios", "running"),  # started again: its second attempt
            NewTransition("gpu03", "firmware", "done", detail={"updated": {"BIOS": "2.3.5"}, "token": "tok-98765"}),
        ], run_id=run_id)
    rows = {(r.node, r.stage): r for r in store.node_stages()}
    assert [rows[("gpu01", "bios")].status, rows[("gpu02", "bios")].status, rows[("gpu03", "firmware")].status] \
        == ["failed", "running", "done"]
    assert rows[("gpu01", "bios")].attempt == 1 and rows[("gpu02", "bios")].attempt == 2
    assert rows[("gpu03", "firmware")].attempt == 0
    events = {e.id: e for e in store.events(0, run_id=run_id)}
    assert [(events[i].node, events[i].kind) for i in ids] == [
        ("gpu01", "stage.failed"), ("gpu02", "stage.running"), ("gpu03", "stage.done")]
    assert [rows[k].event_id for k in (("gpu01", "bios"), ("gpu02", "bios"), ("gpu03", "firmware"))] == ids
    dump = _dump(store)
    assert "Kx7-bulk-resolved-secret" not in dump and "tok-98765" not in dump
    assert events[ids[2]].payload["detail"]["updated"] == {"BIOS": "2.3.5"}
