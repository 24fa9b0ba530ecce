"""`clusterctl inventory` through the real entry point, and its Ansible export through ansible-inventory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "inventories" / "site.yaml"
LAB = REPO / "inventories" / "lab.yaml"
FIXTURES = REPO / "tests" / "fixtures" / "inventory"
SECRET = "Hunter2-Sup3rS3cret!"
ANSIBLE_INVENTORY = Path(sys.executable).with_name("ansible-inventory")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    result = run_cli(capsys, *args)
    return result.code, result.out, result.err


def test_check_site_json(capsys) -> None:
    code, out, _ = cli(capsys, "inventory", "check", str(SITE), "--output", "json")
    assert code == 0
    result = json.loads(out)
    assert result["nodes"] >= 2000 and result["errors"] == []
    gpu_nodes = result["groups"]["compute"]
    assert result["gpus"] == 8 * gpu_nodes
    assert result["racks"] == 514


def test_check_human_summary(capsys) -> None:
    code, out, _ = cli(capsys, "inventory", "check", str(LAB))
    assert code == 0
    assert "16 nodes" in out and "128 GPUs" in out and "2 racks" in out


@pytest.mark.parametrize(
    "fixture",
    [
        "unknown-key.yaml",
        "inline-password.yaml",
        "duplicates.yaml",
        "unknown-rack.yaml",
        "bad-sha256.yaml",
        "syntax-error.yaml",
        "empty.yaml",
        "binary.yaml",
        "top-level-list.yaml",
        "not-utf8.yaml",
        "many-errors.yaml",
    ],
)
def test_bad_inventories_exit_2_with_positions(capsys, fixture: str) -> None:
    path = FIXTURES / fixture
    code, out, err = cli(capsys, "inventory", "check", str(path))
    assert code == 2
    assert "Traceback" not in out + err
    assert f"{path}:" in err
    lines = [line for line in err.splitlines() if line.startswith(f"{path}:") and ": error:" in line]
    assert lines and all(line.split(":")[1].isdigit() and line.split(":")[2].isdigit() for line in lines)


def test_bad_inventory_json_still_prints_the_report(capsys) -> None:
    code, out, err = cli(capsys, "--output", "json", "inventory", "check", str(FIXTURES / "many-errors.yaml"))
    assert code == 2
    result = json.loads(out)
    assert len(result["errors"]) == 5 and result["nodes"] == 0
    first = result["errors"][0]
    assert {"file", "line", "column", "message", "severity", "key", "hint"} <= set(first)
    assert SECRET not in out + err


def test_missing_file(capsys, tmp_path: Path) -> None:
    code, out, err = cli(capsys, "inventory", "check", str(tmp_path / "absent.yaml"))
    assert code == 2 and "file not found" in err and "Traceback" not in err


def test_inline_secret_never_printed_by_any_command(capsys) -> None:
    for command in ("check", "show", "export-ansible"):
        code, out, err = cli(capsys, "inventory", command, str(FIXTURES / "inline-password.yaml"))
        assert code == 2, command
        assert SECRET not in out + err
        assert "inline-password.yaml:4:59" in err and "env:CLUSTERCTL_BMC_PASSWORD" in err


def test_show_json_and_limit(capsys) -> None:
    code, out, _ = cli(capsys, "-o", "json", "inventory", "show", str(SITE), "--limit", "a01-r01,login")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == [
        "gpu0001",
        "gpu0002",
        "gpu0003",
        "gpu0004",
        "login01",
        "login02",
        "login03",
        "login04",
    ]
    assert rows[0]["bmc"] == "10.10.0.1:443" and rows[0]["gpus"] == 8 and rows[-1]["gpus"] == 0


def test_show_table_lists_every_node_uncut(capsys) -> None:
    code, out, _ = cli(capsys, "inventory", "show", str(LAB))
    assert code == 0
    assert "gpu0016" in out and "127.1.0.16:8443" in out and "8x H100-SXM5-80GB" in out


def test_limit_matching_nothing_is_exit_2(capsys) -> None:
    code, _, err = cli(capsys, "inventory", "show", str(LAB), "--limit", "gpu0001,cpu[1-4]")
    assert code == 2 and "cpu[1-4]" in err


def _ansible_list(path: Path, tmp_path: Path) -> dict:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible")}
    done = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def _plain(value):
    """ansible-inventory's listing with the unsafe markers taken off."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, list) else value


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_export_ansible_parsed_by_ansible_inventory(capsys, tmp_path: Path, suffix: str) -> None:
    out_path = tmp_path / f"hosts{suffix}"
    code, out, _ = cli(capsys, "inventory", "export-ansible", str(LAB), "--out", str(out_path))
    assert code == 0 and out == ""
    listing = _ansible_list(out_path, tmp_path)
    hostvars = listing["_meta"]["hostvars"]
    assert len(hostvars) == 16
    assert sorted(listing["rack_lab_r01"]["hosts"]) == [f"gpu{i:04d}" for i in range(1, 9)]
    assert len(listing["rack_lab_r02"]["hosts"]) == 8
    assert len(listing["gpu_h100_sxm5_80gb"]["hosts"]) == 16
    node = _plain(hostvars["gpu0003"])
    assert (node["ansible_host"], node["ansible_port"], node["ansible_user"]) == (
        "127.2.0.3",
        2222,
        "clusterctl",
    )
    assert node["ansible_ssh_private_key_file"].endswith(".local/state/clusterctl/lab/ssh/id_ed25519")
    assert node["clusterctl_gpu_count"] == 8 and node["clusterctl_software"]["cuda"] == "12.4"
    assert "password" not in json.dumps(hostvars)


def test_export_ansible_site_subset_to_stdout(capsys, tmp_path: Path) -> None:
    code, out, _ = cli(capsys, "inventory", "export-ansible", str(SITE), "--limit", "a01-r[01-03],svc[01-02]")
    assert code == 0
    path = tmp_path / "site.yaml"
    path.write_text(out)
    listing = _ansible_list(path, tmp_path)
    assert len(listing["_meta"]["hostvars"]) == 14
    assert {g for g in listing if g.startswith("rack_")} == {
        "rack_a01_r01",
        "rack_a01_r02",
        "rack_a01_r03",
        "rack_a00_r02",
    }
    assert len(listing["role_service"]["hosts"]) == 2


def test_every_inventory_command_has_an_example(capsys) -> None:
    for command in ("check", "show", "export-ansible"):
        code, out, _ = cli(capsys, "inventory", command, "--help")
        assert code == 0 and "Example: clusterctl inventory" in out


def test_real_console_script(clusterctl_bin: list[str]) -> None:
    done = subprocess.run(
        [*clusterctl_bin, "inventory", "check", str(SITE), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["gpus"] >= 16000
    bad = subprocess.run(
        [*clusterctl_bin, "inventory", "check", str(FIXTURES / "binary.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "binary.yaml:2:1" in bad.stderr
