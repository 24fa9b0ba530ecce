"""The Slurm launcher against a real Slurm cluster on this machine (slurmctld, three slurmds, munge).

The ranks all run on this host, but each through its own slurmd as node1..node3, so the
verdict, the drain and the resume are exactly what a real cluster would see.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from clusterctl.burnin.launchers.protocol import BurninSpec
from clusterctl.burnin.launchers.slurm import SlurmLauncher, _exit_code, filesystem_of
from clusterctl.errors import ClusterctlError
from clusterctl.state.store import Store


def _slurm(cluster, outdir: Path) -> list[str]:
    return ["burnin", "--launcher", "slurm", "--slurm-conf", cluster.conf, "--nproc", "1", "--outdir", outdir,
            "--straggler-ratio", "0.6", "--timeout", "3m", "-o", "json"]


def test_two_node_burnin_through_sbatch_passes(cli, tiny, slurm_cluster, outdir: Path) -> None:
    result = cli(*_slurm(slurm_cluster, outdir), "--nodes", "node[1-2]", *tiny)
    assert result.code == 0, result.out + result.err
    data = result.json()
    assert data["job_state"] == "completed" and data["job_exit_code"] == 0, data["job_message"]
    assert [(n["node"], n["status"]) for n in data["nodes"]] == [("node1", "pass"), ("node2", "pass")]
    # One output file per Slurm task, each naming its own node.
    outputs = sorted(outdir.glob(f"rank-{data['job']}-*.out"))
    assert len(outputs) == 2
    assert {'"node": "node1"' in p.read_text() for p in outputs} == {True, False}
    assert slurm_cluster.node_states() == {"node1": "idle", "node2": "idle", "node3": "idle"}


def test_a_node_without_the_runtime_ends_its_task_at_once_naming_the_fix(cli, tiny, slurm_cluster,
                                                                        outdir: Path) -> None:
    """Each task checks its node's runtime first, as a prolog would: node2 has none (its TaskProlog-given root
    holds nothing), so the job ends at once, node2 named with the command that installs it, node1 not blamed."""
    from clusterctl.burnin.runtime import Runtime

    runtime = Runtime.this_release()
    home = slurm_cluster.root("node2") / runtime.directory.lstrip("/")
    away = home.with_name("away")
    home.rename(away)
    try:
        result = cli(*_slurm(slurm_cluster, outdir), "--nodes", "node[1-2]", *tiny)
    finally:
        away.rename(home)
    assert result.code == 1, result.out + result.err
    data = result.json()
    verdicts = {n["node"]: n for n in data["nodes"]}
    assert verdicts["node2"]["status"] == "fail", verdicts
    reason = verdicts["node2"]["reasons"][0]
    assert f"no burn-in runtime of clusterctl {runtime.version}" in reason
    assert reason.endswith("--stages runtime --limit node2"), reason
    assert verdicts["node1"]["status"] == "incomplete", verdicts  # stopped by node2, not at fault
    slurm_cluster.wait_idle(timeout_s=30)


def test_slow_node_is_drained_with_its_reason_and_released(cli, tiny, slurm_cluster, outdir: Path) -> None:
    result = cli(*_slurm(slurm_cluster, outdir), "--nodes", "node[1-3]", *tiny,
                 "--fault", "slow:node=node2:factor=4", "--quarantine")
    assert result.code == 1, result.out + result.err
    data = result.json()
    assert {n["node"]: n["status"] for n in data["nodes"]} == {"node1": "pass", "node2": "fail", "node3": "pass"}
    assert [(a["node"], a["ok"]) for a in data["quarantine"]] == [("node2", True)]
    reasons = slurm_cluster.drain_reasons()
    assert list(reasons) == ["node2"] and "straggler" in reasons["node2"]
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        flag = next(f for f in store.flags(quarantined_only=True) if f.node == "node2")
        assert flag.source == "burnin:slurm" and "straggler" in (flag.reason or "")
        event = store.events(node="node2", kind="quarantine.applied")[-1]
        assert event.payload["slurm_conf"] == str(slurm_cluster.conf)

    # Release finds the mechanism and the cluster from the store: no --slurm-conf needed.
    released = cli("burnin", "release", "node2", "-o", "json")
    assert released.code == 0, released.err
    assert released.json()["via"] == "slurm"
    assert slurm_cluster.drain_reasons() == {}
    slurm_cluster.wait_idle(timeout_s=20)
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        assert not [f for f in store.flags(quarantined_only=True) if f.node == "node2"]


def test_rendered_script_runs_one_task_per_node_with_static_rendezvous(tmp_path: Path) -> None:
    spec = BurninSpec(run_id="r1", model="transformer-tiny", nodes=("gpu01", "gpu02", "gpu03"), nproc=8,
                      steps=10, timeout_s=90)
    files = SlurmLauncher(partition="gpu", gpus_per_node=8).render(spec, tmp_path)
    script, task = files["burnin.sbatch"], files["task.sh"]
    assert "#SBATCH --nodelist=gpu[01-03]" in script and "#SBATCH --nodes=3" in script
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --gpus-per-node=8" in script
    assert "#SBATCH --time=2" in script and "--ntasks-per-node=1" in script
    assert '--node-rank="$SLURM_NODEID"' in task and "rdzv-backend" not in task
    assert "--nproc-per-node=8" in task and "--nnodes=3" in task
    assert 'CLUSTERCTL_NODE="$SLURMD_NODENAME"' in task


def test_slurm_exit_codes() -> None:
    assert _exit_code("0:0") == 0
    assert _exit_code("3:0") == 3
    assert _exit_code("0:9") == 137
    assert _exit_code("") is None


@pytest.fixture
def sbatch(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The launcher's Slurm commands, answered here (sbatch hands out job 42, the nodes run on this host):
    no Slurm needed."""
    calls: list[list[str]] = []

    def answer(_launcher: SlurmLauncher, args: list[str]) -> str:
        calls.append(args)
        return "42\n"

    def scontrol(_launcher: SlurmLauncher, args: list[str]) -> subprocess.CompletedProcess[str]:
        line = f"NodeName=node1 NodeAddr=127.0.0.1 NodeHostName={socket.gethostname()} State=IDLE"
        return subprocess.CompletedProcess(args, 0, line + "\n", "")

    monkeypatch.setattr(SlurmLauncher, "_run", answer)
    monkeypatch.setattr(SlurmLauncher, "_call", scontrol)
    return calls


def _spec(outdir: Path) -> BurninSpec:
    return BurninSpec(run_id="r1", model="transformer-tiny", nodes=("node1",), workdir_out=outdir)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_an_outdir_others_can_write_is_refused_before_anything_is_written(tmp_path: Path, sbatch) -> None:
    outdir = tmp_path / "shared"
    outdir.mkdir()
    outdir.chmod(0o1777)  # like /tmp: anyone may add a file, or a symlink, for the job to run
    with pytest.raises(ClusterctlError, match=re.escape(f"{outdir} is writable by others") + ".*"
                       + re.escape(f"chmod 700 {outdir}")):
        SlurmLauncher().submit(_spec(outdir))
    assert sbatch == [] and list(outdir.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_an_outdir_of_another_user_is_refused(tmp_path: Path, sbatch) -> None:
    outdir = tmp_path / "theirs"
    outdir.mkdir(mode=0o755)
    os.chown(outdir, 65534, 65534)
    with pytest.raises(ClusterctlError, match=re.escape(f"{outdir} belongs to uid 65534, not to you")):
        SlurmLauncher().submit(_spec(outdir))
    assert sbatch == []


def test_a_new_outdir_and_the_scripts_are_private_whatever_the_umask(tmp_path: Path, sbatch) -> None:
    outdir = tmp_path / "runs" / "r1"
    previous = os.umask(0)
    try:
        submission = SlurmLauncher().submit(_spec(outdir))
    finally:
        os.umask(previous)
    assert submission.ref == "42" and sbatch == [["sbatch", "--parsable", str(outdir / "burnin.sbatch")]]
    assert (_mode(outdir), _mode(outdir / "burnin.sbatch"), _mode(outdir / "task.sh")) == (0o700, 0o600, 0o700)


def test_a_symlink_planted_where_a_script_goes_is_replaced_not_followed(tmp_path: Path, sbatch) -> None:
    outdir = tmp_path / "out"
    outdir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (outdir / "task.sh").symlink_to(victim)
    SlurmLauncher().submit(_spec(outdir))
    assert victim.read_text() == "untouched\n"
    assert not (outdir / "task.sh").is_symlink() and "torch.distributed.run" in (outdir / "task.sh").read_text()


PYXIS_SITE = """\
version: 1
site: {name: pyxis}
defaults:
  bmc: {vendor: redfish, address_pool: 10.0.1.0/24, user: admin, password: env:CLUSTERCTL_BMC_PASSWORD}
  ssh: {address: "{name}.mgmt.example", user: ops}
  hardware:
    gpu: {model: H100-SXM5-80GB, count: 8}
    infiniband: {hcas: 8, rate_gbps: 400, devices: [mlx5_0, "mlx5_1:1"], socket_ifname: ens1f0, gdr_level: SYS}
  scheduler:
    slurm: {partition: gpu, container_image: "nvcr.io#site/clusterctl-burnin:0.1.0"}
halls:
  - name: H1
    rows:
      - name: R1
        racks:
          - {name: r1}
groups:
  - name: gpu
    nodes: gpu[01-02]
    rack: r1
"""


def test_pyxis_image_and_fabric_env_come_from_the_inventory_into_a_valid_script(cli, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(PYXIS_SITE)
    outdir = "/shared/burnin"
    result = cli("burnin", site, "--launcher", "slurm", "--outdir", outdir, "--dry-run", "-o", "json")
    assert result.code == 0, result.err
    files = result.json()["files"]
    script, task = files["burnin.sbatch"], files["task.sh"]
    assert "--container-image='nvcr.io#site/clusterctl-burnin:0.1.0'" in script
    assert "--container-mounts=/shared/burnin:/shared/burnin" in script
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --gpus-per-node=8" in script
    # In the image: its Python, and the workload where `burnin image build` put it.
    assert "cd /opt/clusterctl\npython=python\n" in task and 'exec "$python" -m torch.distributed.run' in task
    assert "runtime.json" not in task  # the image carries the workload: no node runtime to check
    for line in ("export NCCL_IB_HCA==mlx5_0,mlx5_1:1", "export NCCL_SOCKET_IFNAME=ens1f0",
                 "export NCCL_NET_GDR_LEVEL=SYS", "export NCCL_DEBUG=INFO"):
        assert line + "\n" in task
    for name, text in files.items():  # bash itself parses what Slurm will run
        path = tmp_path / name
        path.write_text(text)
        check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    # --image on the command line wins over the inventory's.
    other = cli("burnin", site, "--launcher", "slurm", "--image", "/shared/images/burnin.sqsh", "--dry-run",
                "-o", "json")
    assert "--container-image=/shared/images/burnin.sqsh" in other.json()["files"]["burnin.sbatch"]


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:1 / / rw,relatime - ext4 /dev/vda rw
31 27 0:45 / /shared rw,relatime - nfs4 filer:/export rw,vers=4.2
32 31 0:46 / /shared/scratch\\040space rw,relatime - lustre 10.0.0.1@o2ib:/fs rw
"""


def test_the_filesystem_of_a_path_is_its_deepest_mount(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert filesystem_of(Path("/shared/runs/r1"), str(info)) == ("/shared", "nfs4")
    assert filesystem_of(Path("/shared/scratch space/x"), str(info)) == ("/shared/scratch space", "lustre")
    assert filesystem_of(Path("/sharedother"), str(info)) == ("/", "ext4")


def test_an_outdir_the_nodes_cannot_see_is_refused_before_submitting(tmp_path: Path, sbatch, monkeypatch) -> None:
    asked: list[list[str]] = []

    def scontrol(_launcher: SlurmLauncher, args: list[str]) -> subprocess.CompletedProcess[str]:
        asked.append(args)  # `scontrol show node -o` as Slurm 22.05 prints it, the node on another host
        line = ("NodeName=node1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 NodeAddr=10.1.0.7 NodeHostName=gpu-host-7 "
                "Version=22.05.8 OS=Linux State=IDLE Partitions=debug")
        return subprocess.CompletedProcess(args, 0, line + "\n", "")

    monkeypatch.setattr(SlurmLauncher, "_call", scontrol)
    outdir = tmp_path / "local"
    with pytest.raises(ClusterctlError, match=r"node1 run elsewhere \(node1 on gpu-host-7\).*--outdir on a "
                                              r"filesystem the nodes share"):
        SlurmLauncher().submit(_spec(outdir))
    assert asked == [["scontrol", "show", "node", "-o", "node1"]] and sbatch == []
    assert list(outdir.iterdir()) == []  # no script written for a job that cannot run
