"""The lab's nodes over real SSH: paramiko (clusterctl.ssh.SSHPool, RejectPolicy) against the lab's asyncssh
listeners, host keys checked against the lab's known_hosts; shell commands run for real in the node's
sandbox, and the burn-in's simulated rank lines are judged by the real burn-in verdict."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from support.cli import CLI
from support.lab import lab_dir
from support.ports import free_port

from clusterctl.burnin.verdict import judge
from clusterctl.inventory import load_inventory
from clusterctl.sim.clock import SimClock
from clusterctl.sim.fleet import SimulatedFleet
from clusterctl.sim.inventory import SOFTWARE
from clusterctl.sim.ssh import LabSSH
from clusterctl.ssh import SSHPool, SSHTarget, run_many, target_from_node
from clusterctl.ssh.errors import SSHAuthFailed, SSHHostKeyError, SSHUnreachable
from clusterctl.validate.software import version_matches


def targets(inventory: Path, ssh_port: int) -> list[SSHTarget]:
    inv = load_inventory(inventory)
    return [dataclasses.replace(target_from_node(n, inv), port=ssh_port) for n in inv.select(None)]


def test_lab_nodes_over_ssh_exec_keys_and_burnin(lab: CLI, tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(
        "faults:\n"
        "  - {node: gpu0003, kind: gpu_slow, params: {gpu: 5, factor: 0.33}}\n"
        "  - {node: gpu0006, kind: ecc_uncorrectable, params: {gpu: 1}}\n"
        "  - {node: gpu0007, kind: xid, params: {code: 79, gpu: 2}}\n"
    )
    ssh_port, bmc_port = free_port("127.2.0.1"), free_port("127.1.0.1", 20000, 40000)
    code, up, err = lab("-o", "json", "lab", "up", "--nodes", "8", "--port", str(bmc_port), "--ssh-port",
                        str(ssh_port), "--latency-ms", "0", "--time-scale", "3000", "--faults", str(faults))
    assert code == 0, err
    assert (up["ssh_first"], up["ssh_last"], up["ssh_port"], up["ssh_user"]) == (
        "127.2.0.1", "127.2.0.8", ssh_port, "clusterctl")
    ssh = lab_dir() / "ssh"
    assert stat.S_IMODE((ssh / "id_ed25519").stat().st_mode) == 0o600
    assert (ssh / "id_ed25519.pub").read_text().startswith("ssh-ed25519 ")
    hosts, key_type, _key = (ssh / "known_hosts").read_text().split()
    assert key_type == "ssh-ed25519"
    assert hosts.split(",") == [f"[127.2.0.{i}]:{ssh_port}" for i in range(1, 9)]
    code, status, err = lab("-o", "json", "lab", "status")
    assert code == 0 and (status["ssh_first"], status["ssh_last"]) == ("127.2.0.1", "127.2.0.8"), err

    nodes = targets(Path(up["inventory"]), ssh_port)
    assert [t.address for t in nodes] == [f"127.2.0.{i}" for i in range(1, 9)]
    assert nodes[0].known_hosts == ssh / "known_hosts" and nodes[0].key_file == ssh / "id_ed25519"
    pool = SSHPool(max_sessions=8, connect_timeout=10, command_timeout=30)
    node = nodes[3]

    # Generic commands: a real shell in the node's sandbox, stdin, stdout, stderr and the exit status wired.
    result = pool.run(node, ["sh", "-c", 'echo "$CLUSTERCTL_NODE $HOME"; pwd; cat; echo oops >&2; exit 7'],
                      stdin=b"line from stdin\n")
    sandbox = lab_dir() / "nodes" / "gpu0004"
    assert result.exit_status == 7
    assert result.stdout.decode().splitlines() == [f"gpu0004 {sandbox}", str(sandbox), "line from stdin"]
    assert result.stderr == b"oops\n"
    assert pool.run(node, ["true"]).exit_status == 0
    assert pool.run(node, ["false"]).exit_status == 1
    # A python program that is not the agent runs for real.
    assert pool.run_json(node, "import json, os; print(json.dumps([6 * 7, os.environ['CLUSTERCTL_NODE']]))") == [
        42, "gpu0004"]

    # Host keys are checked: another key for this address, or no entry at all, is refused.
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[{node.address}]:{ssh_port} ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIB+srW7bbngvH64iJ7v8+z2qU57tIWOMBRY7WRrxOOtp\n")
    with pytest.raises(SSHHostKeyError, match="does not match"):
        pool.run(dataclasses.replace(node, known_hosts=wrong), ["true"])
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(SSHHostKeyError, match="not in known_hosts"):
        pool.run(dataclasses.replace(node, known_hosts=empty), ["true"])
    with pytest.raises(SSHAuthFailed):
        pool.run(dataclasses.replace(node, user="root"), ["true"])

    # The burn-in: every node runs its part of an 8-node torchrun; the verdict names the faulty nodes.
    def burnin(target: SSHTarget) -> list[dict[str, Any]]:
        rank = nodes.index(target)
        argv = ["torchrun", "--nnodes", "8", "--nproc-per-node", "8", "--node-rank", str(rank), "--rdzv-backend",
                "c10d", "-m", "workloads.transformer", "--model", "transformer-small", "--steps", "60",
                "--log-every", "5", "--checksum-every", "20"]
        result = pool.run(target, argv, env={"CLUSTERCTL_RUN": "burnin-42", "CLUSTERCTL_NODE": target.name})
        lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
        assert result.exit_status == (1 if target.name == "gpu0007" else 0)
        return lines

    outcomes = run_many(nodes, burnin, max_parallel=8)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    records = [rec for o in outcomes for rec in o.value or []]
    assert {r["world_size"] for r in records} == {64} and {r["run"] for r in records} == {"burnin-42"}
    assert sorted({r["rank"] for r in records}) == list(range(64))
    verdicts = {v.node: v for v in judge(records, [t.name for t in nodes], world_size=64)}
    failed = {name: v.reasons for name, v in verdicts.items() if v.status == "fail"}
    assert set(failed) == {"gpu0003", "gpu0006", "gpu0007"}, failed
    assert any("rank 21: straggler" in r for r in failed["gpu0003"]), failed["gpu0003"]  # node 2 x 8 + GPU 5
    assert all("checksum" in r for r in failed["gpu0006"]) and "rank 41" in failed["gpu0006"][0]
    assert any("rank 50 stopped reporting" in r for r in failed["gpu0007"]), failed["gpu0007"]


class _LoopThread:
    """An event loop in a thread, as the lab process runs one, for in-process servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_per_node_host_keys_and_powered_off_node(tmp_path: Path) -> None:
    fleet = SimulatedFleet(3, "pw", SimClock(600.0))
    lab_ssh = LabSSH(fleet, tmp_path, port=free_port("127.2.0.1"), per_node_keys=True)
    loop = _LoopThread()
    try:
        loop.run(lab_ssh.start())
        lines = (tmp_path / "ssh" / "known_hosts").read_text().splitlines()
        assert len(lines) == 3 and len({line.split()[2] for line in lines}) == 3
        pool = SSHPool(connect_timeout=5, command_timeout=10)
        node = SSHTarget("gpu0002", "127.2.0.2", lab_ssh.port, "clusterctl", tmp_path / "ssh" / "id_ed25519",
                         tmp_path / "ssh" / "known_hosts")
        assert pool.run(node, ["echo", "up"]).stdout == b"up\n"
        # The SFTP subsystem (file transfer for ansible) works on the real filesystem.
        client = pool._connect(node)
        try:
            with client.open_sftp() as sftp:
                sftp.putfo(io.BytesIO(b"payload"), str(tmp_path / "sent.txt"))
                assert sftp.stat(str(tmp_path / "sent.txt")).st_size == 7
        finally:
            client.close()
        assert (tmp_path / "sent.txt").read_bytes() == b"payload"
        # gpu0001's key written for gpu0002's address: refused.
        swapped = tmp_path / "swapped"
        swapped.write_text(f"[127.2.0.2]:{lab_ssh.port} {' '.join(lines[0].split()[1:])}\n")
        with pytest.raises(SSHHostKeyError):
            pool.run(dataclasses.replace(node, known_hosts=swapped), ["true"])
        # A server that is powered off drops SSH connections.
        fleet.by_name["gpu0002"].hw.powered = False
        with pytest.raises(SSHUnreachable):
            pool.run(node, ["true"])
        fleet.by_name["gpu0002"].hw.powered = True
        assert pool.run(node, ["true"]).exit_status == 0
        # A second lab on the same SSH port cannot listen, and says where.
        (tmp_path / "other").mkdir()
        other = LabSSH(fleet, tmp_path / "other", port=lab_ssh.port)
        with pytest.raises(OSError, match=f"cannot listen for SSH on 127.2.0.1:{lab_ssh.port}"):
            loop.run(other.start())
    finally:
        lab_ssh.close()
        loop.stop()


def test_lab_node_software_is_what_the_lab_inventory_expects(repo: Path) -> None:
    inv = load_inventory(repo / "inventories" / "lab.yaml")
    software = inv.select(None)[0].software
    for component, version in SOFTWARE.items():
        assert version_matches(version, str(getattr(software, component))), component
