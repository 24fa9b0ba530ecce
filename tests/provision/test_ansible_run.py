"""The site playbook, run for real by ansible-runner over SSH against sshd test hosts.

Each host renders into its own `clusterctl_root` under the test's directory and reads an empty
sysfs, so it is a node without GPUs, NVSwitches or HCAs: hardware tasks must show up as skipped.
Host keys are checked against the fleet's known_hosts, never accepted blindly.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.leftovers import command_line, table
from support.sshd import SSHFleet, SSHHost, fleet_fixture

from clusterctl import log
from clusterctl.inventory.load import load_inventory
from clusterctl.inventory.site import Inventory
from clusterctl.provision.stages.os.ansible import HostOutcome, TaskResult, run_playbook
from clusterctl.state.store import Store

HARDWARE_TASKS = [
    ("nvidia_driver", "Install the NVIDIA driver packages"),
    ("fabricmanager", "Install Fabric Manager"),
    ("cuda_toolkit", "Install the CUDA toolkit"),
    ("dcgm", "Enable the DCGM host engine"),
    ("infiniband", "Install the RDMA stack"),
    ("gpu_tuning", "Read the current GPU settings"),
]
# Installing node_exporter is guarded by the switch only (no hardware), so the tests turn it off;
# everything else stays as on a real node.
SECRET = "Tr0ub4dor-and-3"
HEALTHY = ("host01", "host02", "host03")
EXTRA_VARS = {"ansible_python_interpreter": "/usr/bin/python3", "clusterctl_install_packages": False}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Module-scoped runs happen before the per-test isolated HOME exists: give them their own."""
    path = tmp_path_factory.mktemp("ansible-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(path))
        patch.setenv("ANSIBLE_LOCAL_TEMP", str(path / ".ansible" / "tmp"))
        yield path


# host01-03 are healthy; host04 is listed with a wrong host key; host05 gets a bad variable.
fleet = fleet_fixture("fleet", count=5, subnet=95)


@dataclass
class FirstRun:
    base: Path
    inventory: Inventory
    roots: dict[str, Path]
    host_vars: dict[str, dict[str, Any]]
    store_url: str
    run_id: int
    outcomes: dict[str, HostOutcome]
    streamed: list[TaskResult]


@pytest.fixture(scope="module")
def first_run(fleet: SSHFleet, home: Path, tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """One real run of site.yml on all five hosts; the tests below each check one side of it."""
    base = tmp_path_factory.mktemp("first-run")
    impostor, bad_var = fleet.hosts[3], fleet.hosts[4]
    wrong = base / "wrong_known_hosts"
    # Another host's key listed for host04's address: the key host04 presents will not match.
    wrong.write_text(f"[{impostor.address}]:{impostor.port} {fleet.hosts[0].host_key_line.split(' ', 1)[1]}")
    inventory = write_inventory(base / "site.yaml", fleet.hosts, known_hosts={impostor.name: wrong})
    roots = roots_for(base / "roots", fleet.hosts)
    per_host = host_vars(roots)
    per_host["host01"]["clusterctl_gpu_power_limit_w"] = 600
    log.redact(SECRET)  # as if it had been resolved from a secret reference
    per_host[bad_var.name]["nvidia_driver_flavour"] = f"dkms-{SECRET}"
    store_url = f"sqlite:///{base / 'state.db'}"
    streamed: list[TaskResult] = []
    with Store.open(store_url) as store:
        run_id = store.start_run("provision")
        outcomes = run_playbook(inventory, inventory.select(None), workdir=base / "work", extra_vars=EXTRA_VARS,
                                host_vars=per_host, store=store, run_id=run_id, forks=5, timeout=400,
                                on_task=streamed.append)
    return FirstRun(base, inventory, roots, per_host, store_url, run_id, outcomes, streamed)


def write_inventory(path: Path, hosts: list[SSHHost], known_hosts: dict[str, Path] | None = None) -> Inventory:
    """An inventory of the fleet's hosts, with the lab's software versions; JSON is YAML too."""
    overrides: dict[str, Any] = {}
    for host in hosts:
        ssh = {"address": host.address, "port": host.port}
        if known_hosts and host.name in known_hosts:
            ssh["known_hosts"] = str(known_hosts[host.name])
        overrides[host.name] = {"ssh": ssh}
    doc = {
        "version": 1,
        "site": {"name": "ansible-test", "secrets_dir": str(hosts[0].key_file.parent)},
        "defaults": {
            "bmc": {"address_pool": "10.9.0.0/24", "user": "admin", "password": "env:CLUSTERCTL_UNUSED_BMC_PASSWORD"},
            "ssh": {"address": "127.0.0.1", "user": hosts[0].user, "key": f"file:{hosts[0].key_file}",
                    "known_hosts": str(hosts[0].known_hosts)},
            "hardware": {"gpu": {"model": "H100-SXM5-80GB", "count": 8, "nvlink": True},
                         "infiniband": {"hcas": 8, "rate_gbps": 400}},
            "software": {"driver": "550.90.07", "cuda": "12.4", "nccl": "2.21.5", "ofed": "24.04-0.7.0.0",
                         "fabricmanager": "550.90.07", "dcgm": "3.3.7"},
        },
        "halls": [{"name": "h1", "rows": [{"name": "row1", "racks": [{"name": "r1"}]}]}],
        "groups": [{"name": "gpu", "nodes": ",".join(h.name for h in hosts), "rack": "r1", "overrides": overrides}],
    }
    path.write_text(json.dumps(doc, indent=1))
    return load_inventory(path)


def roots_for(base: Path, hosts: list[SSHHost]) -> dict[str, Path]:
    return {h.name: base / h.name for h in hosts}


def host_vars(roots: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {name: {"clusterctl_root": str(root), "clusterctl_sysfs_root": str(root / "sys")}
            for name, root in roots.items()}


def task_events(store: Store, run_id: int) -> dict[str, dict[tuple[str | None, str], str]]:
    """{host: {(role, task): status}} from the store's ansible.task events of one run."""
    seen: dict[str, dict[tuple[str | None, str], str]] = {}
    for event in store.events(kind="ansible.task", run_id=run_id):
        assert event.node is not None
        seen.setdefault(event.node, {})[(event.payload.get("role"), event.payload["task"])] = event.payload["status"]
    return seen


def test_each_healthy_host_renders_its_configuration_under_its_root(first_run: FirstRun) -> None:
    for name in HEALTHY:
        outcome = first_run.outcomes[name]
        assert outcome.ok and outcome.changed > 0 and outcome.skipped > 0, outcome
        etc = first_run.roots[name] / "etc"
        assert "blacklist nouveau" in (etc / "modprobe.d/blacklist-nouveau.conf").read_text()
        dropin = etc / "systemd/system/nvidia-persistenced.service.d/clusterctl.conf"
        assert "--persistence-mode" in dropin.read_text()
        tuning = (etc / "clusterctl/gpu-tuning.env").read_text()
        assert f"GPU_POWER_LIMIT_W={600 if name == 'host01' else ''}\n" in tuning and "GPU_PERSISTENCE=1" in tuning
        unit = (etc / "systemd/system/clusterctl-gpu-tuning.service").read_text()
        assert ("nvidia-smi -pl" in unit) == (name == "host01")
        assert "/node_exporter $NODE_EXPORTER_ARGS" in (etc / "systemd/system/node_exporter.service").read_text()
        options = (etc / "default/node_exporter").read_text()
        assert "--collector.textfile.directory=/var/lib/node_exporter/textfile" in options
        assert (first_run.roots[name] / "var/lib/node_exporter/textfile").is_dir()
        # Versions and hardware come from the inventory through the generated host variables.
        assert "cuda-12.4" in (etc / "profile.d/cuda.sh").read_text()
        assert "NCCL_IB_DISABLE=0" in (etc / "nccl.conf").read_text()
        assert "DCGM_FI_DEV_XID_ERRORS" in (etc / "dcgm-exporter/clusterctl-counters.csv").read_text()
        assert "ib_umad" in (etc / "modules-load.d/clusterctl-rdma.conf").read_text()
    assert not Path("/etc/clusterctl/gpu-tuning.env").exists()


def test_hardware_tasks_skip_and_every_result_lands_in_the_store(first_run: FirstRun) -> None:
    with Store.open(first_run.store_url) as store:
        events = task_events(store, first_run.run_id)
        task_count = len(store.events(kind="ansible.task", run_id=first_run.run_id))
        recorded = {e.node: e.payload for e in store.events(kind="ansible.host", run_id=first_run.run_id)}
    for name in HEALTHY:
        tasks = events[name]
        for task in HARDWARE_TASKS:
            assert tasks[task] == "skipped", (name, task)
        assert tasks[("nvidia_driver", "Blacklist nouveau")] == "changed"
        assert tasks[(None, "Gather the hardware facts that guard the roles")] == "ok"
    # One store event per streamed result, each also handed to the caller as it happened.
    assert task_count == len(first_run.streamed)
    assert {n: p["status"] for n, p in recorded.items()} == {
        "host01": "ok", "host02": "ok", "host03": "ok", "host04": "unreachable", "host05": "failed"}
    assert recorded["host02"]["changed"] == first_run.outcomes["host02"].changed


def test_a_wrong_host_key_makes_only_that_host_unreachable(first_run: FirstRun) -> None:
    unreachable = first_run.outcomes["host04"]
    assert unreachable.unreachable and unreachable.failed_task == "Gather the hardware facts that guard the roles"
    assert unreachable.message and "host key verification failed" in unreachable.message.lower()
    assert not first_run.roots["host04"].exists()
    assert all(first_run.outcomes[name].ok for name in HEALTHY)


def test_a_bad_variable_fails_only_its_host_with_the_secret_masked(first_run: FirstRun) -> None:
    failed = first_run.outcomes["host05"]
    assert failed.failed and (failed.failed_role, failed.failed_task) == ("nvidia_driver", "Check the driver settings")
    assert failed.message and "nvidia_driver_flavour must be dkms or precompiled" in failed.message
    assert SECRET not in failed.message and log.MASK in failed.message
    with Store.open(first_run.store_url) as store:
        stored = [e.payload for e in store.events(run_id=first_run.run_id) if e.kind.startswith("ansible.")]
    assert SECRET not in json.dumps(stored)
    assert not (first_run.roots["host05"] / "etc").exists()  # it stopped at its first role
    assert all(first_run.outcomes[name].ok for name in HEALTHY)


def test_a_second_run_changes_nothing(first_run: FirstRun) -> None:
    nodes = [n for n in first_run.inventory.select(None) if n.name in HEALTHY]
    per_host = {name: first_run.host_vars[name] for name in HEALTHY}
    with Store.open(first_run.store_url) as store:
        run_id = store.start_run("provision")
        second = run_playbook(first_run.inventory, nodes, workdir=first_run.base / "work", extra_vars=EXTRA_VARS,
                              host_vars=per_host, store=store, run_id=run_id, forks=3, timeout=300)
        statuses = {s for tasks in task_events(store, run_id).values() for s in tasks.values()}
    assert {n: (o.status, o.changed) for n, o in second.items()} == dict.fromkeys(HEALTHY, ("ok", 0))
    assert statuses == {"ok", "skipped"}


SLOW_PLAYBOOK = ("- name: Slow\n  hosts: all\n  gather_facts: false\n  tasks:\n"
                 "    - name: Wait on the controller\n      ansible.builtin.pause:\n        seconds: 60\n")


def processes_of_run(base: Path) -> list[str]:
    """Live processes that name a file under `base`: ansible-playbook and each worker it forks (they name
    the run's inventory, which is there)."""
    me = os.getpid()
    return [f"{p.pid}: {command_line(p.pid)}" for p in table().values()
            if p.pid != me and p.state not in ("Z", "X") and str(base) in command_line(p.pid)]


def test_a_run_past_its_timeout_fails_every_unfinished_host(fleet: SSHFleet, tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "site.yaml", fleet.hosts[:2])
    slow = tmp_path / "slow.yml"
    slow.write_text(SLOW_PLAYBOOK)
    outcomes = run_playbook(inventory, inventory.select(None), playbook=slow, workdir=tmp_path / "work",
                            extra_vars=EXTRA_VARS, timeout=3)
    assert {n: o.status for n, o in outcomes.items()} == {"host01": "failed", "host02": "failed"}
    assert all("timed out after 3 s" in (o.message or "") for o in outcomes.values())
    assert processes_of_run(tmp_path) == []  # Ansible's worker, in a session of its own, ended too

    # The inventory handed to Ansible: host keys checked against the node's known_hosts, the key a path.
    written = json.loads(next((tmp_path / "work").glob("ansible-*/inventory/hosts.json")).read_text())
    host = written["all"]["hosts"]["host01"]
    common_args = host["ansible_ssh_common_args"]["__ansible_unsafe"]  # data, never a template
    assert f"-o UserKnownHostsFile={fleet.known_hosts}" in common_args
    assert "-o StrictHostKeyChecking=yes" in common_args
    assert host["ansible_ssh_private_key_file"] == {"__ansible_unsafe": str(fleet.client_key)}
    assert fleet.client_key.read_text().splitlines()[1] not in json.dumps(written)


def test_a_cancelled_run_ends_every_process_it_started(fleet: SSHFleet, tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "site.yaml", fleet.hosts[:2])
    slow = tmp_path / "slow.yml"
    slow.write_text(SLOW_PLAYBOOK)
    cancel = threading.Event()

    def cancel_once_the_worker_runs() -> None:
        deadline = time.monotonic() + 60
        while len(processes_of_run(tmp_path)) < 2 and time.monotonic() < deadline:  # ansible-playbook + worker
            time.sleep(0.1)
        cancel.set()

    canceller = threading.Thread(target=cancel_once_the_worker_runs, daemon=True)
    canceller.start()
    outcomes = run_playbook(inventory, inventory.select(None), playbook=slow, workdir=tmp_path / "work",
                            extra_vars=EXTRA_VARS, timeout=120, cancel=cancel)
    canceller.join()
    assert all(o.status == "failed" and "cancelled" in (o.message or "") for o in outcomes.values()), outcomes
    assert processes_of_run(tmp_path) == []


# A stand-in for nvidia-smi on a node with two GPUs: it answers the tuning role's query from a state
# file and applies -pm, -pl, -ac and -rac to it, logging every call, as the real one changes the GPUs.
FAKE_NVIDIA_SMI = """#!/usr/bin/python3
import json, sys
from pathlib import Path
state_file = Path(sys.argv[0]).with_name("gpus.json")
gpus = json.loads(state_file.read_text())
args = sys.argv[1:]
with open(Path(sys.argv[0]).with_name("calls.log"), "a") as log:
    log.write(" ".join(args) + "\\n")
if args and args[0].startswith("--query-gpu="):
    fields = ("index", "pm", "pl", "gr", "mem", "max_gr", "max_mem", "def_gr", "def_mem")
    for g in gpus:
        print(", ".join(str(g[k]) for k in fields))
    sys.exit(0)
chosen = [g for g in gpus if "-i" not in args or str(g["index"]) == args[args.index("-i") + 1]]
for g in chosen:
    if "-pm" in args:
        g["pm"] = "Enabled" if args[args.index("-pm") + 1] == "1" else "Disabled"
    if "-pl" in args:
        g["pl"] = "%.2f" % float(args[args.index("-pl") + 1])
    if "-rac" in args:
        g["gr"], g["mem"] = g["def_gr"], g["def_mem"]
    if "-ac" in args:
        g["mem"], g["gr"] = args[args.index("-ac") + 1].split(",")
state_file.write_text(json.dumps(gpus))
"""


def test_on_a_gpu_node_tuning_changes_only_what_differs(fleet: SSHFleet, tmp_path: Path) -> None:
    host = fleet.hosts[0]
    inventory = write_inventory(tmp_path / "site.yaml", [host])
    root = tmp_path / "roots" / host.name
    for index in range(2):  # two H100s in the prepared sysfs
        dev = root / "sys" / "bus" / "pci" / "devices" / f"0000:1{index}:00.0"
        dev.mkdir(parents=True)
        (dev / "vendor").write_text("0x10de\n")
        (dev / "class").write_text("0x030200\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    base = {"pm": "Disabled", "pl": "700.00", "max_gr": 1980, "max_mem": 2619, "def_gr": 1755, "def_mem": 2619}
    (tools / "gpus.json").write_text(json.dumps([
        base | {"index": 0, "gr": 1980, "mem": 2619},  # application clocks pinned by someone: reset them
        base | {"index": 1, "gr": 1755, "mem": 2619},  # already at the defaults
    ]))
    per_host = host_vars({host.name: root})
    per_host[host.name] |= {"clusterctl_nvidia_smi": str(smi), "clusterctl_gpu_power_limit_w": 600}

    results: list[TaskResult] = []
    first = run_playbook(inventory, inventory.select(None), workdir=tmp_path / "work", extra_vars=EXTRA_VARS,
                         host_vars=per_host, on_task=results.append)
    assert first[host.name].ok, first[host.name]
    by_task = {r.task: r.status for r in results}
    assert by_task["Read the current GPU settings"] == "ok"
    for task in ("Turn on persistence mode", "Set the power limit", "Reset the application clocks to their defaults"):
        assert by_task[task] == "changed", task
    assert by_task["Pin the application clocks at their maximum"] == "skipped"
    assert by_task["Install the NVIDIA driver packages"] == "skipped"  # the switch is off
    calls = (tools / "calls.log").read_text().splitlines()
    assert [c for c in calls if not c.startswith("--query-gpu=")] == ["-pm 1", "-pl 600", "-i 0 -rac"]

    second = run_playbook(inventory, inventory.select(None), workdir=tmp_path / "work", extra_vars=EXTRA_VARS,
                          host_vars=per_host)
    assert (second[host.name].status, second[host.name].changed) == ("ok", 0)
    assert len((tools / "calls.log").read_text().splitlines()) == len(calls) + 1  # only the query
