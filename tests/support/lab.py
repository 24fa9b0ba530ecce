"""A private embedded lab for one test: `python -m clusterctl.sim` in its own process on free ports.

Its own process, as an operator runs it, so a test never depends on what earlier tests left in
this interpreter; its own directory and ports, so it never meets a lab another test (or a
developer's `clusterctl lab up`) has running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clusterctl.sim.inventory import render_lab_inventory
from support.ports import free_port

START_TIMEOUT_S = 60.0
UNSERVED_SSH = "127.2.250.250"
"""An SSH address inside the lab's range that no lab node serves."""
NO_SSH_PORT = 1
"""tcpmux: privileged and unused. A lab without SSH points its nodes here, so `os` and `validate` skip for
certain even while another lab on this machine serves the usual SSH addresses."""


def lab_dir() -> Path:
    """The lab directory of this test's isolated home (tests/conftest.py), where `lab up` starts the lab."""
    return Path(os.environ["CLUSTERCTL_LAB_DIR"])


def stop_lab_cli(cli: Callable[..., object]) -> None:
    """`lab down` through the CLI, then a kill of the lab's process where `down` left it running."""
    cli("lab", "down")
    pid_file = lab_dir() / "lab.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        with contextlib.suppress(OSError):  # it may end between the read and the kill
            if b"clusterctl.sim" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


@dataclass
class Lab:
    directory: Path
    nodes: int
    bmc_port: int
    ssh_port: int
    process: subprocess.Popen[bytes]

    def inventory(self, path: Path, unreachable: str | None = None) -> Path:
        """The inventory `lab up` writes, on this lab's ports; `unreachable` gets an SSH address nothing serves."""
        text = render_lab_inventory(self.nodes, self.directory, bmc_port=self.bmc_port,
                                    ssh_port=self.ssh_port or NO_SSH_PORT)
        if unreachable:  # the lab's one group ends the file: give it an override
            text = text.rstrip("\n") + f"\n    overrides:\n      {unreachable}: {{ssh: {{address: {UNSERVED_SSH}}}}}\n"
        path.write_text(text)
        return path

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def start_lab(directory: Path, nodes: int, faults: Sequence[dict[str, Any]] | Path = (), *, latency_ms: float = 0.0,
              time_scale: float = 600.0, bmc_port: int | None = None, ssh_port: int | None = None) -> Lab:
    """Start a lab and wait until it announces itself; the caller stops it (`Lab.stop`).

    `faults` is a list of faults or a fault file (YAML); ports left out are free ones picked here, and
    `ssh_port=0` starts the lab without SSH. The directory ends as `lab up` leaves it, firmware images
    included, so an inventory from `Lab.inventory` can be provisioned.
    """
    from clusterctl.sim.inventory import write_firmware_images

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if isinstance(faults, Path):
        fault_file = faults.resolve()
    else:
        fault_file = directory / "faults.json"  # JSON is YAML: the lab's fault file loader reads it
        fault_file.write_text(json.dumps({"faults": list(faults)}))
    write_firmware_images(directory)
    if bmc_port is None:
        bmc_port = free_port("127.1.0.1", 20000, 40000)
    if ssh_port is None:
        ssh_port = free_port("127.2.0.1")
    with open(directory / "sim.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "clusterctl.sim", "--lab-dir", str(directory), "--nodes", str(nodes),
             "--latency-ms", str(latency_ms), "--time-scale", str(time_scale), "--port", str(bmc_port),
             "--ssh-port", str(ssh_port), "--faults", str(fault_file)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    lab = Lab(directory, nodes, bmc_port, ssh_port, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (directory / "lab.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            lab.stop()
            pytest.fail(f"the lab did not start: {(directory / 'sim.log').read_text()[-2000:]}")
        time.sleep(0.1)
    return lab


@pytest.fixture(name="lab")
def lab_from_param(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The `lab` fixture of modules that import it: a lab of `request.param` = (nodes, faults) with 50 ms
    of BMC latency, for `@pytest.mark.parametrize("lab", [(nodes, faults)], indirect=True)`."""
    nodes, faults = request.param
    with start_lab(tmp_path / "lab", nodes, faults, latency_ms=50.0) as running:
        yield running


@contextlib.contextmanager
def labs(directory: Path, **defaults: Any) -> Iterator[Callable[..., Lab]]:
    """A factory of labs under `directory` (`make(nodes, faults, **start_lab options)`), every one
    stopped at the end: for tests that need labs of several sizes or faults."""
    started: list[Lab] = []

    def make(nodes: int, faults: Sequence[dict[str, Any]] | None = None, **options: Any) -> Lab:
        lab = start_lab(directory / f"lab{len(started)}", nodes, faults or [], **{**defaults, **options})
        started.append(lab)
        return lab

    try:
        yield make
    finally:
        for lab in started:
            lab.stop()
