"""The local launcher end to end: real torchrun ranks (gloo on CPU) through `clusterctl burnin`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from clusterctl.burnin.launchers.local import LocalLauncher, rank_nodes
from clusterctl.burnin.launchers.protocol import BurninSpec
from clusterctl.errors import ClusterctlError
from clusterctl.state.store import Store

LOCAL = ["burnin", "--launcher", "local", "--nproc", "2", "--nodes", "gpu[1-2]", "-o", "json"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _store() -> Store:
    return Store.open(os.environ["CLUSTERCTL_STATE"])


def test_healthy_run_passes_and_lands_in_the_store(cli, tiny: list[str], outdir: Path) -> None:
    result = cli(*LOCAL, *tiny, "--straggler-ratio", "0.6", "--outdir", outdir)
    assert result.code == 0, result.err
    data = result.json()
    assert [(n["node"], n["status"]) for n in data["nodes"]] == [("gpu1", "pass"), ("gpu2", "pass")]
    assert data["job_state"] == "completed" and data["records"] > 0
    # gloo on CPU: no NCCL log to read, the transport is recorded as gloo (real workload, real torchrun).
    assert [n["metrics"]["transport"] for n in data["nodes"]] == ["gloo", "gloo"]
    with _store() as store:
        run = store.run(data["run"])
        assert run is not None and run.kind == "burnin" and run.status == "succeeded"
        assert {(r.node, r.status) for r in store.burnin(data["run"])} == {("gpu1", "pass"), ("gpu2", "pass")}
        losses = store.telemetry("gpu2", "burnin.loss")
        assert len(losses) == 11  # step 1 and every 3rd of 30
        assert {s.labels["rank"] for s in losses} == {1} and losses[-1].labels["step"] == 30


def test_slowed_rank_names_its_node_and_exits_1(cli, tiny: list[str], outdir: Path) -> None:
    result = cli(*LOCAL, *tiny, "--straggler-ratio", "0.6", "--outdir", outdir, "--fault", "slow:rank=1:factor=4")
    assert result.code == 1
    nodes = {n["node"]: n for n in result.json()["nodes"]}
    assert nodes["gpu1"]["status"] == "pass"
    assert nodes["gpu2"]["status"] == "fail" and "straggler" in nodes["gpu2"]["reasons"][0]
    with _store() as store:
        assert {r.node: r.status for r in store.burnin(result.json()["run"])} == {"gpu1": "pass", "gpu2": "fail"}
        assert store.run(result.json()["run"]).status == "failed"
        assert [e.node for e in store.events(kind="burnin.failed")] == ["gpu2"]
        # The node's burn-in checks stand beside its validation checks, with the remediation.
        speed = {c.node: c for n in ("gpu1", "gpu2") for c in store.checks(n) if c.check == "burnin.speed"}
        assert speed["gpu1"].status == "pass" and speed["gpu2"].status == "fail"
        assert "straggler" in speed["gpu2"].detail and speed["gpu2"].data["remediation"]


def test_hung_rank_is_killed_at_the_timeout_and_named(cli, tiny: list[str], outdir: Path) -> None:
    started = time.monotonic()
    result = cli(*LOCAL, *tiny, "--outdir", outdir, "--fault", "hang:rank=1:step=2", "--timeout", "20s")
    assert result.code == 1, result.err
    assert time.monotonic() - started < 60
    data = result.json()
    assert data["job_state"] == "timeout"
    gpu2 = next(n for n in data["nodes"] if n["node"] == "gpu2")
    assert gpu2["status"] == "fail", gpu2
    assert any("rank 1 stopped reporting after step 1 " in r for r in gpu2["reasons"]), gpu2
    # Nothing of the job survives the cancel: no process still carries this run's output file open.
    ranks_out = str(outdir / "ranks.out")
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            targets = {os.readlink(fd) for fd in fd_dir.iterdir()}
        except OSError:
            continue
        assert ranks_out not in targets, f"process {fd_dir.parent.name} outlived the cancel"


def test_ranks_map_to_nodes_in_blocks() -> None:
    spec = BurninSpec(run_id="x", nodes=("a", "b"), nproc=4)
    assert rank_nodes(spec) == ["a", "a", "b", "b"]
    with pytest.raises(ClusterctlError, match="does not split evenly"):
        rank_nodes(BurninSpec(run_id="x", nodes=("a", "b", "c"), nproc=4))


def test_stall_timeout_reaches_the_workload_and_the_lab_reads_it() -> None:
    from clusterctl.sim.ranks import parse_burnin

    args = BurninSpec(run_id="x", nodes=("a",), steps=5, stall_timeout_s=90).workload_args()
    assert args[args.index("--stall-timeout") + 1] == "90s"
    job = parse_burnin("torchrun --nnodes 1 --nproc-per-node 8 " + " ".join(args))
    assert job is not None and job.env["CLUSTERCTL_STALL_TIMEOUT"] == "90.0"


@pytest.mark.parametrize("args,message", [
    (["--steps", "5", "--duration", "1m"], "give one of them"),
    (["--duration", "soon"], "not a duration"),
    (["--launcher", "pbs"], "unknown 'pbs'"),
    (["--quarantine"], "no scheduler"),
    (["--nodes", "gpu[1-"], "--nodes"),
])
def test_bad_input_is_one_line_and_exit_2(cli, args: list[str], message: str) -> None:
    result = cli("burnin", "--model", "transformer-tiny", *args)
    assert result.code == 2
    assert message in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_crashed_rank_is_blamed_and_its_peer_is_incomplete(cli, tiny: list[str], outdir: Path) -> None:
    result = cli(*LOCAL, *tiny, "--outdir", outdir, "--fault", "crash:rank=1:step=3", "--straggler-ratio", "0.6")
    assert result.code == 1, result.err
    data = result.json()
    assert data["job_state"] == "failed" and data["job_exit_code"] != 0
    nodes = {n["node"]: n for n in data["nodes"]}
    assert nodes["gpu2"]["status"] == "fail"
    assert "rank 1 exited with status 3, the first failure of the job" in nodes["gpu2"]["reasons"]
    assert nodes["gpu1"]["status"] == "incomplete", nodes["gpu1"]
    assert "gpu2 failed first" in nodes["gpu1"]["reasons"][-1]


def test_cancel_ends_what_the_run_left_behind_after_torchrun_exited(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for torchrun that exits at once, leaving a "rank" behind in a session of its own.
    pidfile = tmp_path / "rank.pid"
    monkeypatch.setattr(LocalLauncher, "command",
                        lambda _self, _spec: ["/bin/sh", "-c", f"setsid sleep 300 & echo $! > {pidfile}"])
    launcher = LocalLauncher()
    submission = launcher.submit(BurninSpec(run_id="left", workdir_out=tmp_path / "out"))
    assert launcher.watch(submission, time.monotonic() + 30).state == "completed"
    pid = int(pidfile.read_text())
    assert _alive(pid)
    launcher.cancel(submission)
    assert not _alive(pid)
