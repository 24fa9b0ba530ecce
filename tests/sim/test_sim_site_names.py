"""Names beyond gpu9999: a 12,500-node lab is named per hall, a site's own naming is servable, and a lab
of one process per hall (clusterctl.sim.halls) is one site to every command.

One lab start (two hall processes of a few nodes, BMCs and SSH) serves the end-to-end part; the
12,500-node naming is checked on the rendered inventory, which needs no process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import run_cli_process
from support.ports import free_port

from clusterctl.inventory import load_inventory
from clusterctl.inventory.hostlist import fold
from clusterctl.sim import halls
from clusterctl.sim.fleet import FLAT_NAMES, default_names, lab_names
from clusterctl.sim.inventory import render_lab_inventory

REPO = Path(__file__).resolve().parents[2]


def test_12500_lab_nodes_are_named_per_hall_and_the_inventory_reaches_each_by_its_index(tmp_path: Path) -> None:
    assert lab_names(FLAT_NAMES)[-1] == "gpu9999"
    served = lab_names(12_500)
    assert len(set(served)) == 12_500
    assert served[0] == "h1-gpu0001" and served[6_250] == "h2-gpu0001" and served[-1] == "h2-gpu6250"
    path = tmp_path / "lab.yaml"
    path.write_text(render_lab_inventory(12_500, tmp_path))
    inventory = load_inventory(path)
    assert list(inventory.nodes) == served
    # node i answers on the i-th address after the pool's network address (clusterctl.sim.fleet.bmc_address)
    assert inventory.nodes["h2-gpu6250"].bmc.address == "127.1.48.212"  # 127.1.0.0 + 12,500
    with pytest.raises(ValueError, match="names 3 nodes, not 4"):
        lab_names(4, "gpu[1-3]")


def test_the_sites_own_naming_is_servable(tmp_path: Path) -> None:
    site = list(load_inventory(REPO / "inventories" / "site.yaml").nodes)
    hostlist = fold(site)
    assert lab_names(len(site), hostlist) == site  # the lab serves them in the inventory's node order
    path = tmp_path / "lab.yaml"
    path.write_text(render_lab_inventory(len(site), tmp_path, names=hostlist))
    assert list(load_inventory(path).nodes) == site


def test_one_lab_process_per_hall_is_one_site_over_redfish_and_ssh(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    try:
        inventory, summaries = halls.up(root, 5, per_hall=3, port=free_port("127.1.0.1"),
                                        ssh_port=free_port("127.2.0.1"), time_scale=600)
        assert [s["nodes"] for s in summaries] == [3, 2]
        assert len({s["pid"] for s in summaries}) == 2
        assert [s["bmc_first"] for s in summaries] == ["127.1.0.1", "127.3.0.1"]
        nodes = load_inventory(inventory).nodes
        assert list(nodes) == ["h1-gpu0001", "h1-gpu0002", "h1-gpu0003", "h2-gpu0001", "h2-gpu0002"]
        assert nodes["h2-gpu0002"].bmc.address == "127.3.0.2" and nodes["h2-gpu0002"].ssh.address == "127.4.0.2"

        state = f"sqlite:///{tmp_path / 'state.db'}"
        telemetry = run_cli_process("-q", "-o", "json", "--state", state, "bmc", "telemetry", str(inventory),
                                    timeout=180).document("bmc telemetry")
        answered = {row["bmc"] for row in telemetry if row["ok"]}
        assert answered == set(nodes), telemetry
        validated = run_cli_process("-q", "-o", "json", "--state", state, "validate", str(inventory), "--checks",
                                    "software", timeout=180)
        assert validated.code == 0, validated.stderr[-2000:]
        assert {n["node"] for n in validated.document("validate")["nodes"]} == set(nodes)
    finally:
        assert halls.down(root) == 2
    assert default_names(16) == "gpu[0001-0016]"


def test_a_site_lab_without_ssh_has_an_inventory(tmp_path: Path) -> None:
    """Benchmarks of the BMC stages run the halls with SSH off (ssh_port 0): one listening socket a node."""
    root = tmp_path / "lab"
    try:
        inventory, summaries = halls.up(root, 3, per_hall=2, port=free_port("127.1.0.1"), ssh_port=0, time_scale=600)
        assert len(summaries) == 2
        nodes = load_inventory(inventory).nodes
        assert list(nodes) == ["h1-gpu0001", "h1-gpu0002", "h2-gpu0001"]
        assert nodes["h2-gpu0001"].bmc.address == "127.3.0.1"
    finally:
        assert halls.down(root) == 2
