"""Issue 14: OS deployment through virtual media, end to end against a bare lab (`lab up --bare`).

The lab's servers come without an OS, as racked: SSH does not answer until the boot stage has mounted the
inventory's installer ISO, overridden the next boot to the virtual CD, power-cycled the server, and the
installer has written the OS and rebooted into it; then the stage ejects the ISO. One node names an image
the BMC cannot reach: the BMC refuses it on insert and that node fails with the BMC's reason, untouched,
while the others install.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from support.ports import free_port
from support.provision_lab import Lab

from clusterctl.inventory import load_inventory
from clusterctl.sim.inventory import LAB_OS, LAB_OS_IMAGE
from clusterctl.ssh.probe import ssh_problem

WRONG = "http://images.lab.internal/os/no-such-installer.iso"


def test_boot_stage_installs_over_virtual_media_and_fails_only_the_node_with_a_wrong_image(lab: Lab) -> None:
    ssh_port = free_port("127.2.0.1")
    code, up, err = lab.cli("-o", "json", "lab", "up", "--bare", "--nodes", "3", "--port", str(lab.port),
                            "--ssh-port", str(ssh_port), "--latency-ms", "0", "--time-scale", "2000")
    assert code == 0, err
    text = Path(up["inventory"]).read_text()
    assert f"os_image: {json.dumps(LAB_OS_IMAGE)}" in text  # `lab up` writes an inventory that names the ISO
    text += f"    overrides:\n      gpu0003: {{software: {{os_image: {json.dumps(WRONG)}}}}}\n"
    lab.inventory.write_text(text)
    inventory = load_inventory(lab.inventory)

    async def unreachable() -> dict[str, str | None]:
        return {name: await ssh_problem(node, 2.0) for name, node in inventory.nodes.items()}

    before = asyncio.run(unreachable())
    assert all(before.values()), before  # bare servers: nothing answers SSH

    code, summary, err = lab.provision("--stages", "boot", "--reboot-timeout", "60")
    assert code == 1, err  # a node failed; the run went on
    assert summary["ready"] == 2
    failed = {f["node"]: f for f in summary["failed"]}
    assert set(failed) == {"gpu0003"} and failed["gpu0003"]["stage"] == "boot"
    assert WRONG in failed["gpu0003"]["reason"] and "RAC0720" in failed["gpu0003"]["reason"]

    servers = lab.status()
    for node in ("gpu0001", "gpu0002"):
        s = servers[node]
        assert s["os"] == LAB_OS and s["os_installs"] == [LAB_OS], node
        assert s["virtual_media"] == [LAB_OS_IMAGE] and s["media_inserted"] == {}, node  # inserted, then ejected
        assert {"target": "Cd", "consumed": "Once"} in s["boot_overrides"], node  # one boot from the CD
        assert s["boot_override"]["enabled"] == "Disabled", node  # the installer rebooted into the disk
    wrong = servers["gpu0003"]
    assert wrong["os"] is None and wrong["os_installs"] == [] and wrong["media_inserted"] == {}
    assert wrong["resets"] == {}  # refused before anything was reset
    after = asyncio.run(unreachable())
    assert after["gpu0001"] is None and after["gpu0002"] is None and after["gpu0003"], after

    # Again: the installed OS answers, so nothing is reinstalled; the wrong image fails the same way.
    code, again, err = lab.provision("--stages", "boot", "--reboot-timeout", "60")
    assert code == 1 and again["ready"] == 2, err
    for node, s in lab.status().items():
        assert s["os_installs"] == servers[node]["os_installs"], node
        assert s["resets"] == servers[node]["resets"], node


def test_an_install_that_never_ends_and_an_iso_that_will_not_eject_fail_only_their_nodes(lab: Lab) -> None:
    """An installer that hangs fails its node after --os-timeout and its ISO is taken out; an ISO the BMC
    refuses to eject fails its node although the OS is up (a later boot could start the installer over it),
    and the next run, once the BMC obeys, ejects it without reinstalling."""
    ssh_port = free_port("127.2.0.1")
    code, up, err = lab.cli("-o", "json", "lab", "up", "--bare", "--nodes", "3", "--port", str(lab.port),
                            "--ssh-port", str(ssh_port), "--latency-ms", "0", "--time-scale", "2000")
    assert code == 0, err
    lab.inventory.write_text(Path(up["inventory"]).read_text())
    for node, kind in (("gpu0001", "os_install_hangs"), ("gpu0002", "media_eject_fails")):
        assert lab.cli("lab", "fault", "add", node, kind)[0] == 0

    code, summary, err = lab.provision("--stages", "boot", "--reboot-timeout", "60", "--os-timeout", "15")
    assert code == 1, err
    assert summary["ready"] == 1
    failed = {f["node"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {"gpu0001", "gpu0002"}, failed
    assert "OS not up 15 s after the install boot" in failed["gpu0001"]
    assert "did not eject the OS image" in failed["gpu0002"] and "GeneralError" in failed["gpu0002"]

    servers = lab.status()
    assert servers["gpu0001"]["os"] is None and servers["gpu0001"]["media_inserted"] == {}  # taken out
    assert servers["gpu0002"]["os"] == LAB_OS and servers["gpu0002"]["media_inserted"]  # still mounted
    assert servers["gpu0003"]["os"] == LAB_OS and servers["gpu0003"]["media_inserted"] == {}

    assert lab.cli("lab", "fault", "clear", "gpu0002")[0] == 0
    code, again, err = lab.provision("--stages", "boot", "--reboot-timeout", "60", "--os-timeout", "15",
                                     "--limit", "gpu0002")
    assert code == 0 and again["ready"] == 1, err
    after = lab.status()["gpu0002"]
    assert after["media_inserted"] == {} and after["os_installs"] == [LAB_OS]  # ejected, not reinstalled
