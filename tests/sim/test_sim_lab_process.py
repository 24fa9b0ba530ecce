"""`clusterctl lab` as a real background process: verified TLS, status, faults while running, down."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.cli import CLI
from support.lab import lab_dir

from clusterctl.sim.fleet import bmc_address

SYS = "/redfish/v1/Systems/System.Embedded.1"


def client(port: int, address: str) -> httpx.Client:
    password = (lab_dir() / "bmc-password").read_text().strip()
    return httpx.Client(
        base_url=f"https://{address}:{port}",
        verify=ssl.create_default_context(cafile=str(lab_dir() / "ca.pem")),
        auth=("root", password),
        timeout=10.0,
    )


def server(status: dict[str, Any], node: str) -> dict[str, Any]:
    return next(s for s in status["servers"] if s["node"] == node)


def test_lab_up_status_faults_down(lab: CLI) -> None:
    code, up, err = lab(
        "-o",
        "json",
        "lab",
        "up",
        "--nodes",
        "32",
        "--port",
        "18443",
        "--latency-ms",
        "0",
        "--time-scale",
        "600",
    )
    assert code == 0, err
    assert up["nodes"] == 32 and Path(up["inventory"]).exists()
    assert "    port: 18443\n" in Path(up["inventory"]).read_text()  # the inventory names the port the lab serves
    pid = up["pid"]
    assert Path(f"/proc/{pid}").exists()
    directory = lab_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for secret in ("bmc-password", "ca-key.pem", "control-token", "server-key.pem"):
        assert stat.S_IMODE((directory / secret).stat().st_mode) == 0o600, secret

    code, again, _ = lab("-o", "json", "lab", "up", "--nodes", "32", "--port", "18443")
    assert code == 0 and again["pid"] == pid  # already up: reported, not restarted
    code, _, err = lab("lab", "up", "--nodes", "8", "--port", "18443")
    assert code == 2 and "lab down" in err
    with client(18443, "127.1.0.32") as bmc:
        assert bmc.get(SYS).json()["HostName"] == "gpu0032"
        images = sorted((directory / "firmware").glob("*.EXE"))
        assert images, "lab up writes the images the lab inventory points at"
        pushed = bmc.post(
            "/redfish/v1/UpdateService/MultipartUpload", files={"UpdateFile": (images[0].name, images[0].read_bytes())}
        )
        assert pushed.status_code == 202
    with pytest.raises(httpx.ConnectError):  # the lab cert is not trusted without the lab CA
        httpx.get(f"https://127.1.0.1:18443{SYS}", timeout=5.0)

    with client(18443, "127.1.0.5") as bmc:
        bmc.patch(SYS, json={"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}})
        assert bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"}).status_code == 204
    code, status, _ = lab("-o", "json", "lab", "status")
    assert code == 0
    assert status["nodes"] == 32 and status["pid"] == pid and status["control"].startswith("https://127.0.0.1:")
    assert status["inventory"] == up["inventory"]
    assert len(status["servers"]) == 32
    gpu5 = server(status, "gpu0005")
    assert gpu5["resets"] == {"ForceRestart": 1}
    assert {"target": "Pxe", "consumed": "Once"} in gpu5["boot_overrides"]
    assert server(status, "gpu0006")["resets"] == {}

    code, added, _ = lab("-o", "json", "lab", "fault", "add", "gpu0007", "psu_failed", "--param", "psu=2")
    assert code == 0 and added["params"] == {"psu": 2}
    with client(18443, "127.1.0.7") as bmc:
        psus = bmc.get("/redfish/v1/Chassis/System.Embedded.1/Power").json()["PowerSupplies"]
        assert psus[1]["Status"]["Health"] == "Critical"
    assert lab("lab", "fault", "add", "gpu0007", "melted")[0] == 2
    code, _, err = lab("lab", "fault", "add", "gpu0099", "xid")
    assert code == 2 and "gpu0099" in err
    code, cleared, _ = lab("-o", "json", "lab", "fault", "clear", "gpu0007")
    assert code == 0 and cleared == {"cleared": 1}
    with client(18443, "127.1.0.7") as bmc:
        psus = bmc.get("/redfish/v1/Chassis/System.Embedded.1/Power").json()["PowerSupplies"]
        assert psus[1]["Status"]["Health"] == "OK"

    assert lab("lab", "down")[0] == 0
    assert not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]
    journal = json.loads((directory / "journal.json").read_text())  # flushed on the way down
    assert next(s for s in journal if s["node"] == "gpu0005")["resets"] == {"ForceRestart": 1}
    assert lab("lab", "down")[0] == 0  # idempotent
    code, _, err = lab("lab", "status")
    assert code == 2 and "not running" in err


def test_bad_fault_file_is_refused_before_start(lab: CLI, tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n  - {node: gpu0040, kind: xid}\n")
    code, _, err = lab("lab", "up", "--nodes", "8", "--faults", str(faults), "--port", "18446")
    assert code == 2 and "gpu0040" in err
    assert not (lab_dir() / "lab.pid").exists()


def test_a_second_lab_on_the_same_addresses_fails_clearly(
    lab: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lab("lab", "up", "--nodes", "2", "--port", "18447", "--latency-ms", "0")[0] == 0
    first = lab_dir()
    monkeypatch.setenv("CLUSTERCTL_LAB_DIR", str(tmp_path / "other-lab"))
    code, _, err = lab("lab", "up", "--nodes", "2", "--port", "18447")
    assert code == 2 and "cannot bind 127.1.0.1:18447" in err
    monkeypatch.setenv("CLUSTERCTL_LAB_DIR", str(first))  # the fixture stops the first lab


def test_scale_2000_nodes_answer_within_a_minute(lab: CLI) -> None:
    start = time.monotonic()
    code, up, err = lab("-o", "json", "lab", "up", "--nodes", "2000", "--port", "18444", "--latency-ms", "0")
    assert code == 0, err
    with client(18444, "127.1.7.208") as bmc:  # the 2000th address of 127.1.0.0/16
        assert bmc.get(SYS).json()["HostName"] == "gpu2000"
    assert time.monotonic() - start < 60
    names = asyncio.run(_sample(list(range(0, 2000, 10)), 18444))  # 200 BMCs across the range, 50 at once
    assert names == [f"gpu{i + 1:04d}" for i in range(0, 2000, 10)]
    assert lab("lab", "down")[0] == 0


async def _sample(indexes: list[int], port: int) -> list[str]:
    password = (lab_dir() / "bmc-password").read_text().strip()
    tls = ssl.create_default_context(cafile=str(lab_dir() / "ca.pem"))
    gate = asyncio.Semaphore(50)

    async def one(i: int) -> str:
        async with gate, httpx.AsyncClient(verify=tls, auth=("root", password), timeout=30.0) as c:
            response = await c.get(f"https://{bmc_address(i)}:{port}{SYS}")
            return str(response.json()["HostName"])

    return list(await asyncio.gather(*(one(i) for i in indexes)))


def test_protocol_validator_finds_no_failures(lab: CLI, tmp_path: Path) -> None:
    validator = shutil.which("rf_protocol_validator", path=str(Path(sys.executable).parent))
    if validator is None:
        pytest.skip("redfish-protocol-validator is not installed")
    code, _, err = lab("lab", "up", "--nodes", "1", "--port", "18445", "--latency-ms", "0")
    assert code == 0, err
    ca = str(lab_dir() / "ca.pem")
    password = (lab_dir() / "bmc-password").read_text().strip()
    # Some of the validator's requests ignore --ca-bundle; REQUESTS_CA_BUNDLE covers them.
    env = dict(os.environ, REQUESTS_CA_BUNDLE=ca)
    done = subprocess.run(
        [
            validator,
            "--rhost",
            "https://127.1.0.1:18445",
            "--user",
            "root",
            f"--password={password}",
            "--ca-bundle",
            ca,
            "--avoid-http-redirect",
            "--report-type",
            "tsv",
            "--report-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    reports = list(tmp_path.glob("*.tsv"))
    assert reports, done.stdout + done.stderr
    with reports[0].open() as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t") if len(row) > 5]
    results = [row[4] for row in rows]
    failures = [row for row in rows if row[4] == "FAIL"]
    assert failures == []
    assert results.count("PASS") > 250
    assert done.returncode == 0
