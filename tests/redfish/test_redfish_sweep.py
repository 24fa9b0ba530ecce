"""What the fleet sweep benchmark relies on: `$expand` in the lab and in `members()`, shared CA
contexts, Nagle off on the lab's sockets, and the benchmark itself end to end on a tiny lab."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from clusterctl.redfish import BMCTarget, RedfishClient
from clusterctl.sim.app import LabApp
from clusterctl.sim.certs import ensure_ca
from clusterctl.sim.clock import SimClock
from clusterctl.sim.fleet import SimulatedFleet, _bind

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "sweep-test-pw"
BMC1 = "https://127.1.0.1:8443"
FIRMWARE = "/redfish/v1/UpdateService/FirmwareInventory"


def lab_client(fleet: SimulatedFleet) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=LabApp(fleet))
    return httpx.AsyncClient(transport=transport, base_url=BMC1, auth=("root", PASSWORD))


def test_expanded_firmware_inventory_equals_member_by_member() -> None:
    fleet = SimulatedFleet(1, PASSWORD, SimClock(1.0))

    async def go() -> tuple[dict, list[dict], list[int]]:
        async with lab_client(fleet) as bmc:
            expanded = (await bmc.get(f"{FIRMWARE}?$expand=.($levels=1)")).json()
            listed = (await bmc.get(FIRMWARE)).json()["Members"]
            one_by_one = [(await bmc.get(m["@odata.id"])).json() for m in listed]
            refused = [
                (await bmc.get(path)).status_code
                for path in (
                    f"{FIRMWARE}?$expand=.($levels=2)",  # deeper than the MaxLevels (1) it advertises
                    f"{FIRMWARE}?$expand=2",  # not a DSP0266 expand value
                )
            ]
            return expanded, one_by_one, refused

    expanded, one_by_one, refused = asyncio.run(go())
    assert len(one_by_one) > 5
    assert expanded["Members"] == one_by_one
    assert expanded["Members@odata.count"] == len(one_by_one)
    assert refused == [501, 501]


def test_members_of_an_expanded_collection_cost_one_request(tmp_path: Path) -> None:
    fleet = SimulatedFleet(1, PASSWORD, SimClock(1.0))
    sent: list[str] = []
    app = LabApp(fleet)

    async def counting(scope: dict, receive: Any, send: Any) -> None:
        sent.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    async def go() -> tuple[list[dict], list[dict]]:
        transport = httpx.ASGITransport(app=counting)
        target = BMCTarget(name="gpu0001", base_url=BMC1, username="root", password=PASSWORD)
        async with RedfishClient(target, transport=transport) as bmc:
            sent.clear()  # the login is not the collection's cost
            expanded = await bmc.members(f"{FIRMWARE}?$expand=.($levels=1)")
            requests_for_expanded = len(sent)
            plain = await bmc.members(FIRMWARE)
            assert requests_for_expanded == 1
            assert len(sent) == 1 + 1 + len(plain)
            return expanded, plain

    expanded, plain = asyncio.run(go())
    assert expanded == plain
    assert all(m.get("Version") for m in expanded)


def test_targets_trusting_one_ca_share_a_context_and_a_new_ca_gets_a_new_one(tmp_path: Path) -> None:
    for lab in ("a", "b"):
        (tmp_path / lab).mkdir()
        ensure_ca(tmp_path / lab)

    def target(name: str, ca: Path) -> BMCTarget:
        return BMCTarget(name=name, base_url="https://127.0.0.1:1", username="u", password="p", verify=str(ca))

    ca_a, ca_b = tmp_path / "a" / "ca.pem", tmp_path / "b" / "ca.pem"
    first = target("n1", ca_a).ssl_context()
    assert target("n2", ca_a).ssl_context() is first
    other = target("n3", ca_b).ssl_context()
    assert other is not first
    assert other.verify_mode.name == "CERT_REQUIRED" and other.check_hostname
    # The CA file replaced in place (another lab started): the old trust must not stay cached.
    ca_a.write_bytes(ca_b.read_bytes())
    os.utime(ca_a, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert target("n1", ca_a).ssl_context() is not first


def test_lab_sockets_turn_nagle_off() -> None:
    """With Nagle on, each answer (head, then body) waited ~40 ms for the client's delayed ACK."""
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP  # what asyncio checks before setting TCP_NODELAY
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_benchmark_smoke_run_sweeps_every_bmc_with_both_clients() -> None:
    pytest.importorskip("redfish", reason="the DMTF redfish library is the baseline (pip install redfish)")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bmc_sweep.py"),
            "--quick",
            "--nodes",
            "12",
            "--baseline-nodes",
            "6",
            "--latency-ms",
            "20",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    fig = json.loads(proc.stdout)
    ours, base = fig["ours"], fig["baseline"]
    assert (ours["bmcs"], ours["errors_total"]) == (12, 0), ours["errors"]
    assert (base["bmcs"], base["errors_total"]) == (6, 0), base["errors"]
    # Same work per BMC: root, login, Power, Thermal, expanded firmware inventory, logout.
    assert ours["requests"] == 6 * 12
    assert base["requests"] == 6 * 6
    assert ours["bound_s"] == pytest.approx(6 * 0.020)
    assert ours["wall_s"] >= ours["bound_s"]  # nobody beats the latency
    assert fig["sim_sessions_created"] == 12 + 6  # session auth, once per BMC and client
    assert fig["sim_sessions_open"] == 0  # and logged out everywhere
    assert not Path(f"/proc/{fig['sim_pid']}").exists()  # the lab was stopped
