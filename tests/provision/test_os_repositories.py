"""The site's mirrors in the inventory (site.repositories): accepted as URLs and key paths only, handed to the
os stage's roles as data (`!unsafe`), refused with the line and key when they could carry anything else."""

from __future__ import annotations

from pathlib import Path

import yaml

from clusterctl.inventory.export_ansible import render
from clusterctl.inventory.load import check_inventory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventory"


def with_repositories(tmp_path: Path, block: str) -> Path:
    text = (FIXTURES / "small.yaml").read_text()
    site = "site: {name: tiny, secrets_dir: .}\n"
    assert site in text, "the fixture's site line moved"
    path = tmp_path / "inv.yaml"
    path.write_text(text.replace(site, "site:\n  name: tiny\n  secrets_dir: .\n" + block, 1))
    return path


def test_mirrors_reach_the_roles_as_unsafe_data_with_the_key_resolved(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    path = with_repositories(tmp_path, "  repositories:\n"
                                       "    cuda: {url: 'http://mirror.site:8080/cuda/repos/ubuntu2204/x86_64/', "
                                       "key: keys/mirror.asc}\n"
                                       "    nccl_tests: {url: 'file:///srv/mirror/nccl-tests.git'}\n")
    inventory, problems, _ = check_inventory(path)
    assert inventory is not None, [p.render() for p in problems]
    exported = render(inventory, "yaml")
    assert "!unsafe 'http://mirror.site:8080/cuda/repos/ubuntu2204/x86_64/'" in exported
    assert f"!unsafe '{tmp_path / 'keys' / 'mirror.asc'}'" in exported
    hostvars = next(iter(yaml.safe_load(exported.replace("!unsafe ", ""))["all"]["hosts"].values()))
    assert hostvars["clusterctl_repositories"] == {
        "cuda": {"url": "http://mirror.site:8080/cuda/repos/ubuntu2204/x86_64/",
                 "key": str(tmp_path / "keys" / "mirror.asc")},
        "nccl_tests": {"url": "file:///srv/mirror/nccl-tests.git"},
    }


def test_a_mirror_url_that_could_carry_a_command_or_an_option_is_refused(tmp_path: Path) -> None:
    for bad in ("http://mirror/$(touch /tmp/x)/", "https://mirror/a b", "ftp://mirror/", "--upload-pack=touch",
                "http://mirror/\"quoted\"", "https://-mirror/"):
        path = with_repositories(tmp_path, f"  repositories:\n    pypi: {{url: '{bad}'}}\n")
        inventory, problems, _ = check_inventory(path)
        assert inventory is None, bad
        rendered = [p.render() for p in problems]
        assert any("site.repositories.pypi.url" in r and "URL" in r for r in rendered), rendered
