"""The Debian test node really boots: systemd reaches multi-user, sshd answers only clients that check its
host key, a reboot from inside comes back with a new boot id, and stopping it leaves no process behind."""

from __future__ import annotations

import os

import pytest

from support import debian_node


@pytest.fixture(scope="module")
def rootfs():
    missing = debian_node.tools_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing, and CI must run this (tools/system-deps.sh installs them)")
        pytest.skip(f"{', '.join(missing)} not installed (tools/system-deps.sh)")
    return debian_node.build_rootfs()


def test_node_boots_to_multi_user_and_reboots(tmp_path, rootfs) -> None:
    node = debian_node.DebianNode(tmp_path / "node", "127.3.0.1", rootfs=rootfs)
    try:
        node.start()
        state = node.ssh("systemctl is-system-running --wait", check=False).stdout.strip()
        assert state in ("running", "degraded"), state
        assert node.ssh("systemctl is-active ssh").stdout.strip() == "active"
        assert node.ssh("sudo -n id -u").stdout.strip() == "0"
        first = node.boot_id()
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        node.known_hosts, checked = empty, node.known_hosts
        assert node.ssh("true", check=False).returncode != 0
        node.known_hosts = checked
        node.ssh("sudo -n systemctl reboot", check=False)
        node.wait_ssh()
        for _ in range(100):  # sshd may still answer from the old boot for a moment
            second = node.ssh("cat /proc/sys/kernel/random/boot_id", check=False).stdout.strip()
            if second and second != first:
                break
        assert second and second != first
        assert node.boots == 2
    finally:
        node.stop()
        node.remove()
    assert node.exit_status == 0
