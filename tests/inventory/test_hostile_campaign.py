"""The campaign that keeps issue 12 closed: inventories whose strings carry an attacker's payloads.

Hypothesis puts hostile text (shell metacharacters, `$(...)`, backticks, newlines, NUL, Jinja
lookups, `@group` patterns, `../`, ssh `-o` options, very long and non-UTF-8 strings) into one key
or value of a valid inventory, then runs what an operator runs on it: `inventory check`,
`export-ansible` (read back by ansible-inventory, and every host variable rendered by a playbook),
`provision --dry-run`, the Slurm and Kubernetes renderers and the command line validate sends over
SSH. Every payload that could run code touches the same canary file, which must never appear;
every run exits 0 or 2 without a traceback; every refusal names file:line:column (and the key,
when the file parsed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterctl.burnin import selection
from clusterctl.burnin.launchers.kubernetes import KubernetesLauncher
from clusterctl.burnin.launchers.protocol import BurninSpec
from clusterctl.burnin.launchers.slurm import SlurmLauncher
from clusterctl.cli.main import run
from clusterctl.errors import ClusterctlError
from clusterctl.inventory import load_inventory
from clusterctl.inventory.load import check_inventory
from clusterctl.ssh.command import command_line

BIN = Path(sys.executable).parent
NON_UTF8 = "\u2063NON-UTF-8\u2063"  # replaced by invalid bytes when the file is written
# Errors about the file as a whole, before any key exists to name.
DOCUMENT_LEVEL = ("not UTF-8", "YAML syntax", "binary data", "the file is empty", "expected a mapping",
                  "expands to more than")

BASE: dict[str, Any] = {
    "version": 1,
    "site": {"name": "tiny", "description": "campaign", "secrets_dir": ".",
             "repositories": {"wheelhouse": {"url": "https://mirror.example/wheels/"}}},
    "defaults": {
        # Loopback only, on a port nothing serves: --dry-run's Redfish calls end at once, locally.
        "bmc": {"vendor": "redfish", "address_pool": "127.77.0.0/24", "port": 9, "user": "admin",
                "password": "env:CLUSTERCTL_CAMPAIGN_PASSWORD", "insecure": True},
        "ssh": {"address": "127.78.0.{n}", "user": "ops", "key": "file:id_ed25519", "known_hosts": "known_hosts"},
        "hardware": {"model": "PowerEdge XE9680", "gpu": {"model": "H100-SXM5-80GB", "count": 8},
                     "infiniband": {"hcas": 8, "rate_gbps": 400, "devices": ["mlx5_0", "mlx5_1:1"],
                                    "socket_ifname": "ens1f0", "gdr_level": "PHB"}},
        "firmware": {"BMC": {"version": "1.2.3", "image": "file:fw.bin", "sha256": "0" * 64}},
        "bios_profile": "fast",
        "bios": {"LogicalProc": "Disabled"},
        "software": {"driver": "550.90.07", "cuda": "12.4", "pytorch": "2.13.0", "os": "Ubuntu 22.04",
                     "os_image": "http://images.example/os/ubuntu-22.04.iso"},
        "scheduler": {"slurm": {"partition": "gpu", "features": ["h100"], "container_image": "nvcr.io#site/burnin:1"},
                      "kubernetes": {"labels": {"nvidia.com/gpu.product": "H100"}, "taints": ["gpu=true:NoSchedule"],
                                     "image": "registry.example/burnin:1", "version": "1.30",
                                     "rdma_resources": {"rdma/rdma_shared_device_a": 1}, "networks": ["rdma-a"]}},
    },
    "bios_profiles": {"fast": {"description": "fast", "attributes": {"SysProfile": "PerfOptimized"}}},
    "halls": [{"name": "H1", "rows": [{"name": "R1", "racks": [{"name": "r[1-2]", "power_budget_w": 20000}]}]}],
    "groups": [{"name": "gpu", "nodes": "n[1-4]", "racks": "r[1-2]", "per_rack": 2, "role": "compute",
                "overrides": {"n4": {"software": {"dcgm": "3.3.7"}}}}],
}
ADDRESSES = {("defaults", "bmc", "address_pool"), ("defaults", "ssh", "address")}


def _paths(node: Any, loc: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], bool]]:
    """Every string value (False) and every mapping key (True) of BASE, by location."""
    found: list[tuple[tuple[Any, ...], bool]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append(((*loc, key), True))
            found += _paths(value, (*loc, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*loc, i))
    elif isinstance(node, str):
        found.append((loc, False))
    return found


PLACES = _paths(BASE)


def payloads(canary: Path) -> list[str]:
    touch = f"touch {canary}"
    return [
        f"$({touch})", f"`{touch}`", f";{touch};", f"|{touch}", f"&& {touch}", f"\n{touch}\n", f"x\r\n{touch}",
        f"{{{{ lookup('pipe', '{touch}') }}}}", f"{{% raw %}}{{{{ lookup('pipe','{touch}') }}}}{{% endraw %}}",
        f"{{{{ query('pipe', '{touch}') }}}}", f"{{# {touch} #}}", f"@x';{touch};'", f"@x:$({touch})",
        f"-oProxyCommand={touch}", f"x -o ProxyCommand={touch}", f"/x -o ProxyCommand=\"{touch}\"",
        "../../../../etc/shadow", "file:~/.ssh/id_ed25519", "env:AWS_SECRET_ACCESS_KEY", "env:CLUSTERCTL_STATE",
        "file:../../x", "\x00", "a\x00b", "\x1b]0;title\x07", "\u202egnp.exe", "\u2028", "A" * 5000,
        NON_UTF8, "gpu\n#SBATCH --wrap=id", "x\n  evil: true", "x: {y: 1}", "*alias", "!!python/object:os.system",
        "'", '"', "\\", "{name}", "{0.__class__}", "%(x)s", "${IFS}id", "~root", "..", "-", "@",
    ]


def hostile_text(canary: Path) -> st.SearchStrategy[str]:
    fixed = st.sampled_from(payloads(canary))
    around = st.text(max_size=6)
    wrapped = st.builds(lambda a, p, b: a + p + b, around, fixed, around)
    return st.one_of(fixed, wrapped, st.text(min_size=1, max_size=40))


def place(doc: dict[str, Any], loc: tuple[Any, ...], is_key: bool, text: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(doc))
    parent = copy
    for step in loc[:-1]:
        parent = parent[step]
    if is_key:
        parent[text] = parent.pop(loc[-1])
    else:
        parent[loc[-1]] = text
    return copy


def write(path: Path, doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    path.write_bytes(text.encode("utf-8").replace(NON_UTF8.encode(), b"\xff\xfe"))


def cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(list(args))
    return code, out.getvalue() + err.getvalue()


class Campaign:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.canary = tmp / "canary"
        self.ran = self.refused = self.accepted = 0
        self.exports: list[Path] = []

    def check_refusal(self, path: Path, output: str) -> None:
        errors = [line for line in output.splitlines() if ": error: " in line]
        assert errors, output
        for line in errors:
            assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: error: ", line), line
        _, problems, _ = check_inventory(path)
        for problem in problems:
            assert problem.key or any(mark in problem.message for mark in DOCUMENT_LEVEL), problem.render()

    def one(self, doc: dict[str, Any], dry_run: bool) -> None:
        self.ran += 1
        path = self.tmp / f"inv-{self.ran}.yaml"
        write(path, doc)
        code, output = cli("inventory", "check", str(path))
        assert code in (0, 2) and "Traceback" not in output, output
        if code == 2:
            self.refused += 1
            self.check_refusal(path, output)
            return
        self.accepted += 1
        for fmt in ("yaml", "json"):
            out = self.tmp / f"export-{self.ran}.{fmt}"
            code, output = cli("inventory", "export-ansible", str(path), "--format", fmt, "--out", str(out))
            assert code in (0, 2) and "Traceback" not in output, output
            if code == 0 and len(self.exports) < 6:
                self.exports.append(out)
        if dry_run:
            code, output = cli("provision", str(path), "--dry-run", "--output", "json")
            assert code in (0, 1, 2) and "Traceback" not in output, output
        self.renderers(path)

    def renderers(self, path: Path) -> None:
        inventory = load_inventory(path)
        nodes = tuple(inventory.nodes)
        node = next(iter(inventory.nodes.values()))
        options = {"slurm_conf": None, "partition": None, "gpus": 8, "kubeconfig": None, "context": None,
                   "namespace": "default", "image": None, "kube_workload": "job"}
        try:
            spec = BurninSpec(run_id="c1", nodes=nodes, extra_env=selection.fabric_env(inventory, list(nodes)))
        except ClusterctlError:
            spec = BurninSpec(run_id="c1", nodes=nodes)
        try:
            slurm = SlurmLauncher(**selection.launcher_options("slurm", inventory, list(nodes), **options))
            files = slurm.render(spec, self.tmp)
            directives = [line for line in files["burnin.sbatch"].splitlines() if line.startswith("#SBATCH")]
            assert len(directives) == 9 and all(len(line.split()) == 2 for line in directives), directives
            exports = [shlex.split(line) for line in files["task.sh"].splitlines() if line.startswith("export ")]
            assert all(len(words) == 2 for words in exports), exports  # one word each: nothing more to run
            srun = shlex.split(files["burnin.sbatch"].split("\nsrun ", 1)[1].replace("\\\n", " "))
            assert f"--container-image={node.scheduler.slurm.container_image}" in srun, srun
        except ClusterctlError:
            pass
        try:
            kube = selection.launcher_options("kubernetes", inventory, list(nodes), **options)
            launcher = KubernetesLauncher(api=object(), **{k: v for k, v in kube.items() if k not in
                                                           ("kubeconfig", "context")})
            manifests = {name: yaml.safe_load(text) for name, text in launcher.render(spec).items()}
            pod = manifests["job.yaml"]["spec"]["template"]["spec"]
            assert pod.get("nodeSelector", {}) == kube["node_labels"]
            limits = pod["containers"][0]["resources"]["limits"]
            assert all(limits[k] == str(v) for k, v in node.scheduler.kubernetes.rdma_resources.items())
        except ClusterctlError:
            pass
        values = [node.name, node.ssh.user, *node.software.model_dump(exclude_none=True).values()]
        line = command_line(["python3", "-", *values], {"CLUSTERCTL_NODE": node.name, "X": node.hardware.model or ""})
        assert shlex.split(line)[-len(values):] == values

    def ansible(self) -> None:
        """Each accepted export read back by ansible-inventory, every host variable rendered by a play."""
        play = self.tmp / "render.yml"
        play.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                        "    - debug: {var: 'hostvars[inventory_hostname]'}\n")
        env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible"), "ANSIBLE_NOCOLOR": "1"}
        for export in self.exports:
            listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(export), "--list"], env=env,
                                    capture_output=True, text=True, timeout=120, check=False)
            assert listed.returncode == 0 and len(json.loads(listed.stdout)["_meta"]["hostvars"]) == 4, listed.stderr
            played = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(export), str(play), "-l", "n1",
                                     "-e", "ansible_connection=local"], env=env,
                                    capture_output=True, text=True, timeout=120, check=False)
            assert played.returncode == 0, played.stdout + played.stderr
            assert not self.canary.exists()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    return Campaign(tmp_path_factory.mktemp("campaign"))


@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_strings_never_run_and_always_get_a_clear_answer(campaign: Campaign, data: st.DataObject,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERCTL_CAMPAIGN_PASSWORD", "campaign-pw")
    monkeypatch.chdir(campaign.tmp)
    loc, is_key = data.draw(st.sampled_from(PLACES), label="place")
    text = data.draw(hostile_text(campaign.canary), label="payload")
    # --dry-run talks to the BMCs: only while they stay on loopback (and then only for some examples).
    dry_run = loc not in ADDRESSES and campaign.ran % 25 == 0
    campaign.one(place(BASE, loc, is_key, text), dry_run)
    assert not campaign.canary.exists(), f"payload {text!r} at {loc} ran"


def test_the_campaign_ran_both_ways_and_ansible_read_what_it_accepted(campaign: Campaign) -> None:
    """After the property test (same module, same campaign): it refused and accepted, and Ansible agrees."""
    # One payload that validation must accept (a description is prose) goes all the way, --dry-run included.
    touch = f"touch {campaign.canary}"
    campaign.one(place(BASE, ("site", "description"), False, f"$({touch}) `{touch}`; {touch} | {touch}"), True)
    assert campaign.ran >= 100 and campaign.refused >= 50 and campaign.accepted >= 1, vars(campaign)
    campaign.ansible()
    assert not campaign.canary.exists()
    print(f"hostile inventories: {campaign.ran} run, {campaign.refused} refused, {campaign.accepted} accepted")
