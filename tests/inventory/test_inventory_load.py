"""The loader against the shipped inventories and the bad samples in tests/fixtures/inventory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clusterctl.errors import InventoryError, SelectionError
from clusterctl.inventory import check_inventory, load_inventory
from clusterctl.inventory.hostlist import HostlistError, expand, fold
from clusterctl.sim.inventory import lab_firmware_image, render_lab_inventory

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "inventory"
SECRET = "Hunter2-Sup3rS3cret!"


def errors_of(name: str) -> list:
    inventory, errors, _ = check_inventory(FIXTURES / name)
    assert inventory is None
    return errors


def test_site_inventory_counts_and_layers() -> None:
    inv = load_inventory(REPO / "inventories" / "site.yaml")
    gpu_nodes = [n for n in inv.nodes.values() if n.gpus]
    assert len(inv.nodes) >= 2000
    assert inv.gpu_count == 8 * len(gpu_nodes)
    assert {n.role for n in inv.nodes.values()} >= {"compute", "login", "service"}
    # layers: the node override wins over the pool; the pool still advances past it
    assert inv.nodes["gpu0007"].bmc.address == "10.10.15.250"
    assert inv.nodes["gpu0008"].bmc.address == "10.10.0.8"
    assert inv.nodes["gpu2048"].software.driver != inv.nodes["gpu0001"].software.driver
    assert inv.nodes["gpu2048"].software.cuda == "12.4"
    # a group drops a firmware component and the GPU the site defaults named
    login = inv.nodes["login01"]
    assert login.gpus == 0 and "HGX-H100" not in login.firmware and "iDRAC" in login.firmware
    assert login.bios == inv.bios_profiles["general"].attributes
    # racks fill in order, 4 per rack, and the rack knows its hall and row
    first = inv.nodes["gpu0001"]
    assert (first.rack, first.slot, first.hall, first.row) == ("a01-r01", 1, "A", "A01")
    assert inv.nodes["gpu0005"].rack == "a01-r02"
    assert inv.racks["a01-r01"].nodes == ["gpu0001", "gpu0002", "gpu0003", "gpu0004"]
    assert inv.nodes["gpu0001"].source.startswith(str(REPO / "inventories" / "site.yaml") + ":")


def test_no_two_nodes_share_an_endpoint_in_the_site() -> None:
    inv = load_inventory(REPO / "inventories" / "site.yaml")
    bmcs = {(n.bmc.address, n.bmc.port) for n in inv.nodes.values()}
    hosts = {(n.ssh.address, n.ssh.port) for n in inv.nodes.values()}
    assert len(bmcs) == len(hosts) == len(inv.nodes)


def test_lab_inventory_is_the_rendered_one_and_valid_without_lab_files() -> None:
    shipped = (REPO / "inventories" / "lab.yaml").read_text()
    assert shipped == render_lab_inventory(16, os_image=True)
    inv = load_inventory(REPO / "inventories" / "lab.yaml")
    assert inv.counts() == {"nodes": 16, "gpus": 128, "racks": 2}
    assert inv.nodes["gpu0001"].bmc.endpoint == "127.1.0.1:8443"
    assert inv.nodes["gpu0016"].ssh.endpoint == "127.2.0.16:2222"
    assert inv.nodes["gpu0009"].rack == "lab-r02"


def test_lab_render_for_n_nodes_matches_its_images(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "lab.yaml"
    path.write_text(render_lab_inventory(20, tmp_path / "lab"))
    inv = load_inventory(path)
    assert inv.counts() == {"nodes": 20, "gpus": 160, "racks": 3}
    target = inv.nodes["gpu0020"].firmware["BIOS"]
    assert target.image.startswith(f"file:{tmp_path}/lab/firmware/")
    assert target.sha256 == hashlib.sha256(lab_firmware_image("BIOS", target.version)).hexdigest()
    with pytest.raises(ValueError):
        render_lab_inventory(0)


@pytest.mark.parametrize(
    ("fixture", "line", "needle"),
    [
        ("unknown-key.yaml", 4, "did you mean 'password'?"),
        ("unknown-key.yaml", 11, "did you mean 'power_budget_w'?"),
        ("inline-password.yaml", 4, "inline secret"),
        ("unknown-rack.yaml", 10, "unknown rack rack03"),
        ("bad-sha256.yaml", 10, "64 hexadecimal"),
        ("syntax-error.yaml", 3, "YAML syntax"),
        ("duplicates.yaml", 16, "already defined by group gpu: n4"),
        ("duplicates.yaml", 10, "BMC endpoint"),
        ("duplicates.yaml", 19, "SSH endpoint"),
        ("top-level-list.yaml", 1, "expected a mapping"),
        ("empty.yaml", 1, "empty"),
        ("binary.yaml", 2, "binary"),
        ("not-utf8.yaml", 2, "UTF-8"),
        ("duplicate-key.yaml", 5, 'duplicate key "bmc"'),
        ("alias-bomb.yaml", 1, "more than 1000000 values"),
    ],
)
def test_bad_inventories_point_at_the_line(fixture: str, line: int, needle: str) -> None:
    found = [p for p in errors_of(fixture) if needle in p.render()]
    assert found, [p.render() for p in errors_of(fixture)]
    assert found[0].line == line and found[0].column is not None
    assert found[0].file.endswith(fixture)


def test_every_error_is_reported_at_once() -> None:
    rendered = [p.render() for p in errors_of("many-errors.yaml")]
    assert len(rendered) == 5, rendered
    for needle in ("inline secret", "did you mean 'port'", "found 8 characters", "max_rebooting", "'fsat'"):
        assert any(needle in r for r in rendered), (needle, rendered)
    assert not any(SECRET in r for r in rendered)


def test_a_setting_missing_for_many_nodes_is_one_error_naming_them() -> None:
    errors = errors_of("missing-settings.yaml")
    assert len(errors) == 1
    assert "bmc.user" in errors[0].message and "n[0001-2048]" in errors[0].message
    assert errors[0].line == 9


def test_missing_file_and_directory(tmp_path: Path) -> None:
    _, errors, _ = check_inventory(tmp_path / "nope.yaml")
    assert "not found" in errors[0].message
    _, errors, _ = check_inventory(tmp_path)
    assert "directory" in errors[0].message


def test_load_inventory_raises_with_all_problems() -> None:
    with pytest.raises(InventoryError) as info:
        load_inventory(FIXTURES / "many-errors.yaml")
    assert len(info.value.problems) == 5
    assert SECRET not in str(info.value)


def test_power_budget_below_the_nodes_draw_is_a_warning(tmp_path: Path) -> None:
    text = (FIXTURES / "small.yaml").read_text().replace("power_budget_w: 20000", "power_budget_w: 12000")
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    inv = load_inventory(path)
    assert len(inv.warnings) == 1
    assert "r[1-2]" in inv.warnings[0].message and "13000 W" in inv.warnings[0].message
    assert inv.warnings[0].severity == "warning" and inv.warnings[0].line == 19


def test_ca_file_and_insecure_together_is_an_error(tmp_path: Path) -> None:
    text = (
        (FIXTURES / "small.yaml")
        .read_text()
        .replace(
            "password: env:CLUSTERCTL_BMC_PASSWORD}",
            "password: env:CLUSTERCTL_BMC_PASSWORD, ca_file: ca.pem, insecure: true}",
        )
    )
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    _, errors, _ = check_inventory(path)
    assert any("contradict" in e.message and e.line == 5 for e in errors), errors


def test_insecure_must_be_a_real_boolean(tmp_path: Path) -> None:
    text = (
        (FIXTURES / "small.yaml")
        .read_text()
        .replace("password: env:CLUSTERCTL_BMC_PASSWORD}", "password: env:CLUSTERCTL_BMC_PASSWORD, insecure: 'yes'}")
    )
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    _, errors, _ = check_inventory(path)
    assert errors and errors[0].key == "defaults.bmc.insecure"


def test_select_by_node_rack_and_group() -> None:
    inv = load_inventory(FIXTURES / "small.yaml")
    assert [n.name for n in inv.select("n[3-4]")] == ["n3", "n4"]
    assert [n.name for n in inv.select("r1")] == ["n1", "n2"]
    assert [n.name for n in inv.select("gpu")] == ["n1", "n2", "n3", "n4"]
    assert [n.name for n in inv.select("n4,r1")] == ["n1", "n2", "n4"]
    assert len(inv.select(None)) == 4
    with pytest.raises(SelectionError, match="zz9"):
        inv.select("n1,zz9")
    with pytest.raises(SelectionError):
        inv.select("n[1-")


def test_address_templates_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "small.yaml", tmp_path / "inv.yaml")
    inv = load_inventory(tmp_path / "inv.yaml")
    node = inv.nodes["n3"]
    assert node.ssh.address == "n3.mgmt.example"
    assert node.ssh.key is not None and node.ssh.key.path(inv.secrets) == tmp_path / "keys" / "id_ed25519"
    assert node.bmc.address == "10.0.1.3"


def test_versions_keep_their_text(tmp_path: Path) -> None:
    text = (
        (FIXTURES / "small.yaml")
        .read_text()
        .replace("  bios_profile: fast", "  bios_profile: fast\n  software: {cuda: 12.10, driver: 550}")
    )
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    node = load_inventory(path).nodes["n1"]
    assert node.software.cuda == "12.10" and node.software.driver == "550"


def test_hostlist_wrapper() -> None:
    assert expand("b[1-2],a1") == ["b1", "b2", "a1"]
    assert expand("a[01-03]!a02") == ["a01", "a03"]
    assert fold(["gpu0003", "gpu0001", "gpu0002"]) == "gpu[0001-0003]"
    with pytest.raises(HostlistError, match="gpu\\[1-"):
        expand("gpu[1-")


def test_duplicate_key_error_does_not_quote_the_values() -> None:
    rendered = " ".join(p.render() for p in errors_of("duplicate-key.yaml"))
    assert SECRET not in rendered and "env:CLUSTERCTL_BMC_PASSWORD" not in rendered


def test_readable_secret_file_is_a_warning_at_check_time(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "small.yaml", tmp_path / "inv.yaml")
    inv = load_inventory(tmp_path / "inv.yaml")
    assert inv.warnings == []  # a key file that does not exist yet is fine
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id_ed25519").write_text("not really a key")
    (tmp_path / "keys" / "id_ed25519").chmod(0o644)
    inv = load_inventory(tmp_path / "inv.yaml")
    assert len(inv.warnings) == 1
    assert "chmod 600" in inv.warnings[0].hint and inv.warnings[0].line == 22


def test_lab_render_survives_odd_directory_names(tmp_path: Path) -> None:
    lab_dir = tmp_path / "my-lab_#1:x"
    path = tmp_path / "lab.yaml"
    path.write_text(render_lab_inventory(3, lab_dir))
    inventory = load_inventory(path)
    node = inventory.nodes["gpu0003"]
    assert node.bmc.password.path(inventory.secrets) == lab_dir / "bmc-password"
    assert node.ssh.known_hosts == f"{lab_dir}/ssh/known_hosts"


def test_columns_point_at_the_offending_key_or_value() -> None:
    found = {(p.line, p.column) for p in errors_of("unknown-key.yaml")}
    assert found == {(4, 66), (11, 30)}
    found = {(p.line, p.column) for p in errors_of("many-errors.yaml")}
    assert {(5, 59), (8, 74)} <= found
