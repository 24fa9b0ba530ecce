"""Firmware image locations: an http:// image is refused unless its target says insecure_image_transfer."""

from __future__ import annotations

from pathlib import Path

from clusterctl.inventory import check_inventory, load_inventory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventory"


def test_http_image_is_an_error_at_its_line_naming_the_fix() -> None:
    inventory, errors, _ = check_inventory(FIXTURES / "http-image.yaml")
    assert inventory is None and len(errors) == 1, [e.render() for e in errors]
    error = errors[0]
    assert (error.line, error.column) == (9, 14) and error.file.endswith("http-image.yaml")
    assert error.key == "defaults.firmware.BIOS.image"
    assert "insecure_image_transfer: true" in error.render() and "https://" in error.message


def test_http_image_is_accepted_with_insecure_image_transfer(tmp_path: Path) -> None:
    text = (FIXTURES / "http-image.yaml").read_text()
    path = tmp_path / "inv.yaml"
    path.write_text(text.replace("      image: http://", "      insecure_image_transfer: true\n      image: http://"))
    target = load_inventory(path).nodes["n1"].firmware["BIOS"]
    assert target.image.startswith("http://") and target.insecure_image_transfer is True


def test_the_flag_must_be_a_real_boolean_and_https_needs_none(tmp_path: Path) -> None:
    text = (FIXTURES / "http-image.yaml").read_text()
    path = tmp_path / "inv.yaml"
    path.write_text(text.replace("      image: http://", "      insecure_image_transfer: 'yes'\n      image: http://"))
    _, errors, _ = check_inventory(path)
    assert {e.key for e in errors} == {"defaults.firmware.BIOS.insecure_image_transfer",
                                       "defaults.firmware.BIOS.image"}
    path.write_text(text.replace("image: http://", "image: https://"))
    assert load_inventory(path).nodes["n1"].firmware["BIOS"].insecure_image_transfer is False


def test_an_image_an_idrac_cannot_take_is_an_error_at_its_line(tmp_path: Path) -> None:
    """iDRAC takes Windows DUPs, d7/d9 and pm files by upload; a Linux .BIN only runs inside the host."""
    text = (FIXTURES / "http-image.yaml").read_text().replace("http://repo.example/bios.exe",
                                                               "https://repo.example/BIOS_LN64_2.3.5.BIN")
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    assert load_inventory(path).nodes["n1"].firmware["BIOS"].image.endswith(".BIN")  # a generic BMC may take it
    path.write_text(text.replace("  bmc: {address_pool", "  bmc: {vendor: idrac, address_pool"))
    inventory, errors, _ = check_inventory(path)
    assert inventory is None and len(errors) == 1, [e.render() for e in errors]
    assert (errors[0].line, errors[0].column, errors[0].key) == (9, 14, "defaults.firmware.BIOS.image")
    assert "n[1-2]" in errors[0].message and "Windows Dell Update Package" in errors[0].render()
    for accepted in ("BIOS_WN64_2.3.5.EXE", "firmimgFIT.d9", "psu.pm"):
        path.write_text(text.replace("BIOS_LN64_2.3.5.BIN", accepted).replace("  bmc: {address_pool",
                                                                             "  bmc: {vendor: idrac, address_pool"))
        assert check_inventory(path)[1] == []
