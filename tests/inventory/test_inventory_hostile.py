"""One test per path by which an inventory once reached a shell, a template or a secret (issue 12).

Each builds the attacker's inventory from the small fixture, runs what an operator would run on
it, and checks that the payload's canary file never appears and the refusal points at the line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clusterctl.burnin.launchers.kubernetes import KubernetesLauncher
from clusterctl.burnin.launchers.protocol import BurninSpec
from clusterctl.burnin.launchers.slurm import SlurmLauncher
from clusterctl.burnin.templates import JobFileError
from clusterctl.cli.main import run
from clusterctl.errors import SecretError
from clusterctl.inventory import load_inventory
from clusterctl.inventory.export_ansible import render
from clusterctl.inventory.load import check_inventory
from clusterctl.inventory.secrets import SecretPolicy, SecretRef
from clusterctl.validate.rules import load_ruleset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventory"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
CLUSTERCTL = Path(sys.executable).with_name("clusterctl")


def hostile(tmp_path: Path, old: str, new: str) -> Path:
    text = (FIXTURES / "small.yaml").read_text()
    assert old in text
    path = tmp_path / "inv.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def errors(path: Path) -> list[str]:
    inventory, problems, _ = check_inventory(path)
    assert inventory is None, "the hostile inventory was accepted"
    return [p.render() for p in problems]


def test_group_pattern_runs_no_shell_during_inventory_check(tmp_path: Path) -> None:
    # ClusterShell's default resolver (its groups.conf ships in the venv) pastes the group name into
    # a shell command; run the real CLI in a directory where the canary would land.
    # (It runs in ClusterShell's configuration directory, so the canary's path is absolute.)
    canary = tmp_path / "pwned"
    path = hostile(tmp_path, "nodes: n[1-4]", f"nodes: \"@x';touch {canary};'\"")
    done = subprocess.run([str(CLUSTERCTL), "inventory", "check", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert not canary.exists()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{path}:22:" in done.stderr and "groups[0].nodes" in done.stderr and "@name" in done.stderr


def test_expanded_names_must_be_names(tmp_path: Path) -> None:
    path = hostile(tmp_path, "nodes: n[1-4]", 'nodes: "n[1-2],n;id"')
    assert any("groups[0].nodes" in e and "not a valid name" in e for e in errors(path))


def test_template_in_a_value_is_refused_at_its_line(tmp_path: Path) -> None:
    path = hostile(tmp_path, "  bios_profile: fast",
                   "  bios_profile: fast\n  software: {driver: \"{{ lookup('pipe', 'id > pwned') }}\"}")
    found = errors(path)
    assert any(e.startswith(f"{path}:12:") and "defaults.software.driver" in e and "'{{'" in e for e in found)


def test_export_marks_every_string_unsafe_so_ansible_never_renders_it(tmp_path: Path) -> None:
    """Defence in depth: a value that got past validation stays data in the export and in hosts.json."""
    shutil_copy(FIXTURES / "small.yaml", tmp_path / "inv.yaml")
    inventory = load_inventory(tmp_path / "inv.yaml")
    canary = tmp_path / "pwned"
    payload = "{{ lookup('pipe', 'touch " + str(canary) + "') }}"
    inventory.nodes = {"n1": dataclasses.replace(inventory.nodes["n1"], group=payload)}
    for fmt in ("yaml", "json"):
        exported = tmp_path / f"hosts.{fmt}"
        exported.write_text(render(inventory, fmt))
        playbook = tmp_path / "show.yml"
        playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                            "    - debug: {msg: '{{ clusterctl_group }}'}\n")
        done = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), "-i", str(exported), str(playbook), "-e", "ansible_connection=local"],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible"), "ANSIBLE_NOCOLOR": "1"},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "lookup('pipe'" in done.stdout  # printed as text, not run
        assert not canary.exists(), f"the {fmt} export let Ansible run the template"


def shutil_copy(src: Path, dst: Path) -> None:
    dst.write_text(src.read_text())


@pytest.mark.parametrize("setting", [
    'partition: "gpu\\nrm -rf /"',
    'partition: "gpu --wrap=id"',
    'features: ["a\\nb"]',
])
def test_newlines_and_spaces_in_scheduler_names_are_refused(tmp_path: Path, setting: str) -> None:
    path = hostile(tmp_path, "  bios_profile: fast", f"  bios_profile: fast\n  scheduler: {{slurm: {{{setting}}}}}")
    assert any("defaults.scheduler.slurm" in e for e in errors(path))


def test_sbatch_lines_take_plain_words(tmp_path: Path) -> None:
    spec = BurninSpec(run_id="r1", nodes=("n1", "n2"))
    with pytest.raises(JobFileError, match="cannot go into a job file"):
        SlurmLauncher(partition="gpu\nid > pwned").render(spec, tmp_path)
    for outdir in ("out dir", "x;id", "a\nb"):
        with pytest.raises(JobFileError):
            SlurmLauncher().render(spec, tmp_path / outdir)
    script = SlurmLauncher(partition="gpu").render(spec, tmp_path)["burnin.sbatch"]
    assert "#SBATCH --partition=gpu\n" in script


def test_kubernetes_names_take_plain_words(tmp_path: Path) -> None:
    spec = BurninSpec(run_id="r1", nodes=("n1",))
    launcher = KubernetesLauncher(api=object(), namespace="default\n  evil: true", image="img", workload="job")
    with pytest.raises(JobFileError):
        launcher.render(spec)


@pytest.mark.parametrize("old, new, key", [
    ("ssh: {address: \"{name}.mgmt.example\"",
     "ssh: {address: \"{name}.mgmt.example\", known_hosts: \"/x -o ProxyCommand=id\"", "defaults.ssh.known_hosts"),
    ("ssh: {address: \"{name}.mgmt.example\"", "ssh: {address: \"-oProxyCommand=id\"", "defaults.ssh.address"),
    ("ssh: {address: \"{name}.mgmt.example\"", "ssh: {address: \"{name} -o ProxyCommand=id\"", "defaults.ssh.address"),
    ("user: ops", "user: \"-oProxyCommand=id\"", "defaults.ssh.user"),
])
def test_ssh_options_cannot_ride_in_paths_addresses_or_users(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert any(key in e for e in errors(hostile(tmp_path, old, new)))


def test_address_is_checked_after_the_template_is_filled_in(tmp_path: Path) -> None:
    # Each name is fine and so is the template, but 40 + 40 characters make a DNS label of 80.
    long = "n" + "x" * 38
    path = hostile(tmp_path, "nodes: n[1-4]", f"nodes: {long}[1-4]")
    path.write_text(path.read_text().replace("\"{name}.mgmt.example\"", "\"{name}{name}.mgmt.example\""))
    assert any("ssh.address" in e and "not a host name" in e for e in errors(path))


def test_known_hosts_path_is_quoted_in_ssh_args(tmp_path: Path) -> None:
    path = hostile(tmp_path, "ssh: {address: \"{name}.mgmt.example\"",
                   "ssh: {address: \"{name}.mgmt.example\", known_hosts: \"kh;id\"")
    exported = render(load_inventory(path), "json")
    args = json.loads(exported)["all"]["hosts"]["n1"]["ansible_ssh_common_args"]["__ansible_unsafe"]
    assert f"-o 'UserKnownHostsFile={tmp_path}/kh;id'" in args


@pytest.mark.parametrize("ref, why", [
    ("file:~/.ssh/id_ed25519", "outside the secrets directory"),
    ("file:/etc/shadow", "outside the secrets directory"),
    ("file:../keys/x", "'..'"),
    ("env:AWS_SECRET_ACCESS_KEY", "start with CLUSTERCTL_"),
    ("env:CLUSTERCTL_STATE", "start with CLUSTERCTL_"),
    ("vault:~/.ssh/x.vault", "outside the secrets directory"),
])
def test_secret_references_stay_in_the_sites_bounds(tmp_path: Path, ref: str, why: str) -> None:
    path = hostile(tmp_path, "password: env:CLUSTERCTL_BMC_PASSWORD", f"password: \"{ref}\"")
    found = errors(path)
    assert any(e.startswith(f"{path}:5:") and "defaults.bmc.password" in e and why in e for e in found), found


def test_environment_pins_the_secrets_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = tmp_path / "vault"
    monkeypatch.setenv("CLUSTERCTL_SECRETS_DIR", str(pinned))
    with pytest.raises(SecretError, match="outside CLUSTERCTL_SECRETS_DIR"):
        SecretPolicy.for_site("/", None, tmp_path)
    assert SecretPolicy.for_site(None, None, tmp_path).root == pinned
    assert SecretPolicy.for_site(str(pinned / "site-a"), None, tmp_path).root == pinned / "site-a"
    monkeypatch.setenv("CLUSTERCTL_SECRET_ENV_PREFIX", "CLUSTERCTL_AMS1_")
    with pytest.raises(SecretError, match="does not start with"):
        SecretPolicy.for_site(None, "CLUSTERCTL_", tmp_path)


def test_a_symbolic_link_out_of_the_secrets_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "id_ed25519"
    outside.write_text("PRIVATE KEY")
    outside.chmod(0o600)
    root = tmp_path / "secrets"
    root.mkdir(mode=0o700)
    (root / "bmc-password").symlink_to(outside)
    with pytest.raises(SecretError, match="leads outside"):
        SecretRef.parse("file:bmc-password").resolve(SecretPolicy(root))


def test_gpu_model_must_be_a_shipped_one(tmp_path: Path) -> None:
    path = hostile(tmp_path, "model: A100-SXM4-80GB", "model: ../../x")
    found = errors(path)
    assert any("defaults.hardware.gpu.model" in e and "H100-SXM5-80GB" in e for e in found), found


def test_rules_are_never_read_from_a_path_the_model_names(tmp_path: Path) -> None:
    planted = tmp_path / "x.yaml"
    planted.write_text("version: 99\nnvml_names: [planted]\n")
    rel = os.path.relpath(planted.with_suffix(""), Path(load_ruleset.__code__.co_filename).with_name("rules"))
    with pytest.raises(Exception, match="no ruleset for GPU model"):
        load_ruleset(rel)


def test_refusals_print_control_characters_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = hostile(tmp_path, "  bios_profile: fast", "  bios_profile: fast\n  \"x\\e[2Jy\": 1")
    assert run(["inventory", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "defaults.x\\x1b[2Jy" in err and "U+001B" in err
