"""The playbook's reboots wait for the run's power gate: the helper the driver role runs on the controller
gets a slot only within the rack's max_rebooting, and a batch that ends gives back what its nodes held."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from clusterctl.inventory.load import check_inventory
from clusterctl.provision.power import PowerGate
from clusterctl.provision.stages.os.gate import RebootGate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventory"
SLOT = Path(__file__).resolve().parents[2] / "playbooks" / "bin" / "reboot_slot.py"


async def helper(verb: str, gate: RebootGate, node: str) -> tuple[int, str]:
    """The command the role's handler runs: its own process, as on the controller."""
    proc = await asyncio.create_subprocess_exec(sys.executable, str(SLOT), verb, str(gate.path), node, "60",
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, err.decode()


def test_reboots_are_admitted_per_rack_and_given_back() -> None:
    inventory, problems, _ = check_inventory(FIXTURES / "small.yaml")
    assert inventory is not None, problems
    power = PowerGate(inventory)  # racks r1 (n1, n2) and r2 (n3, n4), max_rebooting 1 each

    async def scenario() -> None:
        async with RebootGate(power, inventory, ["n1", "n2", "n3"]) as gate:
            assert await helper("acquire", gate, "n1") == (0, "")
            assert await helper("acquire", gate, "n3") == (0, "")  # another rack: its own slot
            waiting = asyncio.create_task(helper("acquire", gate, "n2"))  # n1's rack is full
            await asyncio.sleep(1.0)
            assert not waiting.done()
            assert power.racks["r1"].rebooting == {"n1"}
            assert await helper("release", gate, "n1") == (0, "")
            assert await waiting == (0, "")
            assert power.racks["r1"].rebooting == {"n2"}
            code, err = await helper("acquire", gate, "n4")  # not in this playbook run
            assert code == 1 and "n4 is not in this playbook run" in err
        # The batch ended with n2 and n3 still holding slots: both given back, the socket gone.
        assert power.racks["r1"].rebooting == set() and power.racks["r2"].rebooting == set()
        assert power.racks["r1"].peak_rebooting == 1
        assert not gate.path.exists()

    asyncio.run(scenario())


def test_a_killed_controllers_gate_directory_is_removed_and_a_live_one_kept(tmp_path: Path) -> None:
    """SIGKILL skips the gate's cleanup; the next run removes what nobody listens on any more."""
    import os
    import socket

    from clusterctl.provision.stages.os.gate import PREFIX, SOCKET_NAME, STALE_AFTER_S, remove_stale_gates

    old = os.path.getmtime(tmp_path) - STALE_AFTER_S - 60
    dead, live, young, foreign = (tmp_path / f"{PREFIX}{n}" for n in ("dead", "live", "young", "x"))
    for d in (dead, live, young):
        d.mkdir()
    (tmp_path / "other-tool").mkdir()
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(dead / SOCKET_NAME))  # bound, then closed: nobody listens
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(live / SOCKET_NAME))
    server.listen()
    foreign.symlink_to(tmp_path / "other-tool")  # a link named like a gate is never followed
    try:
        for d in (dead, live, foreign):
            os.utime(d, (old, old), follow_symlinks=False)
        assert remove_stale_gates(tmp_path) == 1
    finally:
        server.close()
    assert not dead.exists()
    assert live.exists() and young.exists() and (tmp_path / "other-tool").exists()
