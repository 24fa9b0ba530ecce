"""The sshd test hosts really serve SSH, and only to clients that check their host keys."""

from __future__ import annotations

import subprocess

from support.sshd import SSHFleet


def test_fleet_hosts_accept_the_key_and_reject_unknown_host_keys(tmp_path) -> None:
    fleet = SSHFleet(tmp_path / "ssh", count=2)
    try:
        for host in fleet.hosts:
            base = ["ssh", "-i", str(host.key_file), "-p", str(host.port), "-o", "BatchMode=yes",
                    "-o", "StrictHostKeyChecking=yes", f"{host.user}@{host.address}"]
            ok = subprocess.run([*base[:-1], "-o", f"UserKnownHostsFile={host.known_hosts}", base[-1], "echo", "hi"],
                                capture_output=True, text=True, timeout=30, check=False)
            assert ok.returncode == 0 and ok.stdout.strip() == "hi", ok.stderr
            empty = tmp_path / "empty_known_hosts"
            empty.write_text("")
            bad = subprocess.run([*base[:-1], "-o", f"UserKnownHostsFile={empty}", base[-1], "true"],
                                 capture_output=True, text=True, timeout=30, check=False)
            assert bad.returncode != 0 and "verification failed" in bad.stderr.lower()
    finally:
        fleet.stop()
