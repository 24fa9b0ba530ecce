"""Fixtures for the Redfish tests: TLS material from a throwaway CA, an iDRAC9-shaped fake BMC,
and a real third-party emulator (sushy-tools' sushy-emulator, fake driver) on loopback."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from support.asgi import free_socket
from support.fakebmc import FakeBMC, load_idrac9


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A test CA and a server certificate for 127.0.0.1/localhost, as PEM files."""
    base = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": base / "ca.pem", "cert": base / "server.pem", "key": base / "server.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture
def idrac() -> FakeBMC:
    return load_idrac9(FakeBMC())


@pytest.fixture(scope="session")
def sushy_emulator(tmp_path_factory: pytest.TempPathFactory, tls: dict[str, str]) -> Iterator[str]:
    """sushy-emulator with its fake driver over HTTPS (cert from the test CA) on 127.0.0.1."""
    exe = shutil.which("sushy-emulator", path=str(Path(sys.executable).parent)) or shutil.which("sushy-emulator")
    if exe is None:
        pytest.skip("sushy-tools is not installed (pip install sushy-tools)")
    base = tmp_path_factory.mktemp("sushy")
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    conf = base / "emulator.conf"
    conf.write_text(
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n"
        f"SUSHY_EMULATOR_LISTEN_PORT = {port}\n"
        f"SUSHY_EMULATOR_SSL_CERT = {tls['cert']!r}\n"
        f"SUSHY_EMULATOR_SSL_KEY = {tls['key']!r}\n"
        f"SUSHY_EMULATOR_STATE_DIR = {str(base / 'state')!r}\n"
    )
    logfile = (base / "emulator.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUSHY_")}
    proc = subprocess.Popen([exe, "--config", str(conf)], stdout=logfile, stderr=subprocess.STDOUT, env=env)
    url = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=tls["ca"])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/redfish/v1/", verify=ctx, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                logfile.flush()
                pytest.fail("sushy-emulator did not start: " + (base / "emulator.log").read_text()[-2000:])
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        logfile.close()


@pytest.fixture
def clusterctl_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog that sees clusterctl's loggers (they do not propagate to the root by default)."""
    import logging

    logger = logging.getLogger("clusterctl")
    before = logger.propagate
    logger.propagate = True
    caplog.set_level(logging.DEBUG, logger="clusterctl")
    try:
        yield caplog
    finally:
        logger.propagate = before
