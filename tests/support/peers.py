"""One lab BMC on loopback for the tests that drive public Redfish clients (sushy, badfish, DMTF's
use-case checkers) against it: the lab as its own process, as `lab up` starts it, with its CA.

The lab runs at 600x simulated time, so a peer that waits for a reboot or a job sees it finish in
well under a second of real time.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clusterctl.sim.fleet import bmc_address
from support.lab import Lab, start_lab

SYS = "/redfish/v1/Systems/System.Embedded.1"
MGR = "/redfish/v1/Managers/iDRAC.Embedded.1"


@dataclass(frozen=True)
class PeerBMC:
    host: str  # "127.1.0.1:PORT"
    url: str  # "https://127.1.0.1:PORT"
    user: str
    password: str
    ca: str
    lab: Lab


def lab_bmc(tmp: Path) -> Iterator[PeerBMC]:
    """A one-node lab started for a test module, stopped when the module ends."""
    with start_lab(tmp / "lab", 1, ssh_port=0, time_scale=600.0) as lab:
        host = f"{bmc_address(0)}:{lab.bmc_port}"
        yield PeerBMC(
            host=host,
            url=f"https://{host}",
            user="root",
            password=(lab.directory / "bmc-password").read_text().strip(),
            ca=str(lab.directory / "ca.pem"),
            lab=lab,
        )


def peer_module(name: str) -> Any:
    """A peer library from the `test` extra; missing, it skips locally and fails under CI=true."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed; CI installs it with the `test` extra")
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")


def peer_tool(name: str) -> str:
    """The console script of a peer installed in this interpreter's environment (the `test` extra)."""
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed; CI installs it with the `test` extra")
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return exe
