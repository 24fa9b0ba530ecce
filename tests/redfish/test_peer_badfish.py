"""Red Hat's badfish, written against real iDRACs, run as operators run it against a lab BMC.

Each test is one badfish command, a separate process with TLS verified against the lab's CA
(SSL_CERT_FILE). A command passes when badfish exits 0, logs no error and no warning about the
BMC's answers (badfish warns, for example, when a session DELETE is not answered 200), and
prints what the lab holds.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.peers import PeerBMC, lab_bmc, peer_tool

# badfish's own warning about passing credentials on the command line does not concern the BMC.
_OWN_WARNINGS = ("Passing secrets via command line",)


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerBMC]:
    yield from lab_bmc(tmp_path_factory.mktemp("badfish"))


# badfish's SCP export sleeps a fixed 45 s before it reads the job (its workaround for real iDRACs that
# report stale job states); the lab's job ends in well under a second, so the tests cap badfish's sleeps at
# one second and run its own entry point otherwise unchanged.
_SHORT_SLEEPS = """
import asyncio, sys
import badfish.main as bf
_sleep = asyncio.sleep
class _Asyncio:
    def __getattr__(self, name):
        return getattr(asyncio, name)
    @staticmethod
    def sleep(delay, *args, **kwargs):
        return _sleep(min(delay, 1.0), *args, **kwargs)
bf.asyncio = _Asyncio()
sys.argv[0] = "badfish"
sys.exit(bf.main())
"""


def badfish(peer: PeerBMC, *args: str) -> str:
    peer_tool("badfish")  # installed, or skip/fail as the other peers do
    env = dict(os.environ, SSL_CERT_FILE=peer.ca, BADFISH_USERNAME=peer.user, BADFISH_PASSWORD=peer.password)
    done = subprocess.run([sys.executable, "-c", _SHORT_SLEEPS, "-H", peer.host, *args], env=env,
                          capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    complaints = [
        line for line in out.splitlines()
        if re.search(r"\b(ERROR|WARNING|Traceback)\b", line) and not any(w in line for w in _OWN_WARNINGS)
    ]
    assert done.returncode == 0 and not complaints, out
    return out


def test_power_state(peer: PeerBMC) -> None:
    assert re.search(r"'On'", badfish(peer, "--power-state"))


def test_firmware_inventory(peer: PeerBMC) -> None:
    out = badfish(peer, "--firmware-inventory")
    assert "BIOS" in out and "Integrated Dell Remote Access Controller" in out


def test_ls_jobs_then_clear_jobs(peer: PeerBMC) -> None:
    # A staged BIOS update leaves a job in the queue, as on a real iDRAC.
    tls = ssl.create_default_context(cafile=peer.ca)
    with httpx.Client(base_url=peer.url, verify=tls, auth=(peer.user, peer.password), timeout=10) as client:
        started = client.post(
            "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
            json={"ImageURI": "http://repo.lab/fw/BIOS_2.3.1.EXE", "TransferProtocol": "HTTP"},
        )
        assert started.status_code == 202
        jid = started.headers["Location"].rsplit("/", 1)[-1]
    assert f"JobID: {jid}" in badfish(peer, "--ls-jobs")
    assert "successfully cleared" in badfish(peer, "--clear-jobs")
    assert "Found active jobs: None" in badfish(peer, "--ls-jobs")


def test_ls_gpu(peer: PeerBMC) -> None:
    assert "NVIDIA H100 SXM5 80GB (Count: 8)" in badfish(peer, "--ls-gpu")


def test_ls_memory(peer: PeerBMC) -> None:
    out = badfish(peer, "--ls-memory")
    assert "TotalSystemMemoryGiB: 2048" in out and out.count("CapacityMiB: 65536") == 32


def test_ls_processors(peer: PeerBMC) -> None:
    assert "Intel(R) Xeon(R) Platinum 8480+" in badfish(peer, "--ls-processors")


def test_check_boot_order(peer: PeerBMC) -> None:
    out = badfish(peer, "--check-boot")
    assert "NIC.PxeDevice.1-1" in out and "Disk.Virtual.0:BOSS.SL.14-1" in out


def test_bios_attribute_through_the_registry(peer: PeerBMC) -> None:
    out = badfish(peer, "--get-bios-attribute", "--attribute", "ProcCStates")
    assert "AttributeName: ProcCStates" in out and "CurrentValue: Disabled" in out


def test_ls_interfaces(peer: PeerBMC) -> None:
    out = badfish(peer, "--ls-interfaces")
    assert "NIC.Embedded.1-1-1" in out and "NIC.Slot.31-1-1" in out


def test_power_consumed(peer: PeerBMC) -> None:
    assert re.search(r"Current watts consumed: \d+", badfish(peer, "--get-power-consumed"))


def test_virtual_media(peer: PeerBMC) -> None:
    assert "Inserted: False" in badfish(peer, "--check-virtual-media")


def test_scp_targets(peer: PeerBMC) -> None:
    for op in ("Export", "Import"):
        out = badfish(peer, "--get-scp-targets", op)
        assert all(t in out for t in ("ALL", "IDRAC", "BIOS")), out


def test_serial(peer: PeerBMC) -> None:
    assert "ServiceTag" in badfish(peer, "--ls-serial")


def test_export_scp(peer: PeerBMC, tmp_path: Path) -> None:
    out = badfish(peer, "--export-scp", str(tmp_path), "--scp-targets", "BIOS,IDRAC")
    assert "SCP export completed successfully" in out, out
    (saved,) = tmp_path.glob("*_export.json")
    components = {c["FQDD"]: {a["Name"]: a["Value"] for a in c["Attributes"]}
                  for c in json.loads(saved.read_text())["SystemConfiguration"]["Components"]}
    assert components["BIOS.Setup.1-1"]["ProcCStates"] == "Disabled"
    assert components["iDRAC.Embedded.1"]["IPMILan.1#Enable"] == "Disabled"
