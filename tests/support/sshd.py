"""Real OpenSSH servers on loopback addresses, one per simulated test host.

Each host gets its own address in 127.0.0.0/8 (so inventories can list distinct host
addresses), its own host key, and a known_hosts file that clients must check against:
tests exercise host-key verification, not a policy that accepts anything. The client
logs in as the user running the tests, with a key made for the session.

With `runtimes=True` each host's sessions get CLUSTERCTL_ROOT (sshd's SetEnv) pointing at a root of
its own holding a burn-in runtime (`clusterctl.burnin.runtime.lay_out`: this interpreter, this
checkout's workload), so burn-ins check and run it as they would a provisioned node's.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clusterctl.ssh import SSHTarget
from support.ports import ephemeral_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass(frozen=True)
class SSHHost:
    name: str
    address: str
    port: int
    user: str
    key_file: Path  # the client's private key
    known_hosts: Path  # holds this host's key (and every other host of the same fleet)
    host_key_line: str
    root: Path | None = None  # CLUSTERCTL_ROOT of its sessions (runtimes=True)

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


class SSHFleet:
    """Starts `count` sshd processes on 127.0.<subnet>.1..count; stop() ends them all."""

    def __init__(self, workdir: Path, count: int, subnet: int = 77, prefix: str = "host",
                 runtimes: bool = False) -> None:
        self.runtimes = runtimes
        if not Path(SSHD).exists():
            raise RuntimeError("sshd is not installed (Debian: openssh-server); run tools/system-deps.sh")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o700)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
        self.user = getpass.getuser()
        self.client_key = workdir / "id_ed25519"
        _keygen(self.client_key)
        self.known_hosts = workdir / "known_hosts"
        self.hosts: list[SSHHost] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        lines = []
        for i in range(1, count + 1):
            lines.append(self._start(f"{prefix}{i:02d}", f"127.0.{subnet}.{i}"))
        self.known_hosts.write_text("".join(lines))
        for host in self.hosts:
            self._wait(host)

    def _start(self, name: str, address: str) -> str:
        hdir = self.workdir / name
        hdir.mkdir()
        _keygen(hdir / "host_ed25519")
        port = ephemeral_port(address)
        authorized = hdir / "authorized_keys"
        shutil.copy(self.client_key.with_suffix(".pub"), authorized)
        root = None
        if self.runtimes:
            from clusterctl.burnin.runtime import lay_out

            root = hdir / "root"
            lay_out(root, sys.executable)
        config = hdir / "sshd_config"
        config.write_text((f"SetEnv CLUSTERCTL_ROOT={root}\n" if root else "") +
            f"ListenAddress {address}\nPort {port}\nHostKey {hdir / 'host_ed25519'}\n"
            f"AuthorizedKeysFile {authorized}\nPidFile {hdir / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "UsePAM no\nStrictModes no\nPrintMotd no\nMaxStartups 100:30:200\nMaxSessions 50\n"
            "Subsystem sftp internal-sftp\nAcceptEnv CLUSTERCTL_*\nLogLevel ERROR\n"
        )
        log = open(hdir / "sshd.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self._procs.append(subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log))
        key = (hdir / "host_ed25519.pub").read_text().split()
        host_line = f"[{address}]:{port} {key[0]} {key[1]}\n"
        self.hosts.append(SSHHost(name, address, port, self.user, self.client_key, self.known_hosts, host_line, root))
        return host_line

    @staticmethod
    def _wait(host: SSHHost, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host.address, host.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd for {host.name} did not answer on {host.endpoint}")

    def write_inventory(self, path: Path, site: str) -> Path:
        """A site inventory whose nodes host01.. are these sshd hosts (one rack, one H100 each)."""
        overrides = "\n".join(f"      {h.name}: {{ssh: {{address: {h.address}, port: {h.port}}}}}" for h in self.hosts)
        path.write_text(
            f"version: 1\nsite: {{name: {site}, secrets_dir: '{self.client_key.parent}'}}\n"
            "defaults:\n"
            "  bmc: {address_pool: 10.9.0.0/24, user: admin, password: env:CLUSTERCTL_BMC_PASSWORD}\n"
            f"  ssh: {{address: 127.0.0.1, user: {self.user}, key: 'file:{self.client_key}', "
            f"known_hosts: {self.known_hosts}}}\n"
            "  hardware: {gpu: {model: H100-SXM5-80GB, count: 1}}\n"
            "halls: [{name: H1, rows: [{name: R1, racks: [{name: r1, power_budget_w: 40000}]}]}]\n"
            f"groups:\n  - name: gpu\n    nodes: host[01-{len(self.hosts):02d}]\n    rack: r1\n    overrides:\n"
            + overrides + "\n")
        return path

    def targets(self) -> list[SSHTarget]:
        return [SSHTarget(h.name, h.address, h.port, h.user, h.key_file, h.known_hosts) for h in self.hosts]

    def __enter__(self) -> SSHFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def fleet_fixture(name: str, count: int, subnet: int, runtimes: bool = False) -> Any:
    """A module-scoped `fleet` fixture, declared as `fleet = fleet_fixture(...)` in the module: its hosts
    start once for all of the module's tests, and stop after the last."""

    @pytest.fixture(scope="module", name="fleet")
    def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHFleet]:
        with SSHFleet(tmp_path_factory.mktemp(name), count=count, subnet=subnet, runtimes=runtimes) as started:
            yield started

    return fleet
