"""A wheelhouse for the burn-in runtime, as an air-gapped site keeps one: PyTorch, its dependencies and
nvidia-ml-py as wheel files in one directory, installed from with `pip --no-index --find-links`.

PyTorch is the CPU build this machine already has (pip's configured find-links or its cache hold the
wheel; CI installs torch from it), its dependencies and nvidia-ml-py come through `pip download` from
the configured indexes. The result is kept in the test cache under a name made of what went into it, so
later runs reuse it without the network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.debian_node import cache_dir

TORCH = "2.13.0"
NVML = "12.550.52"  # the burn-in runtime role's nvidia-ml-py


def torch_wheel() -> Path | None:
    """The local torch wheel for this Python, where pip is told to look (find-links) or in pip's cache."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    places = [Path(p) for p in os.environ.get("PIP_FIND_LINKS", "").split() if p]
    places += [Path("/opt/wheels"), Path.home() / ".cache" / "pip"]
    for place in places:
        if place.is_dir():
            found = sorted(place.rglob(f"torch-{TORCH}*-{tag}-*.whl"))
            if found:
                return found[0]
    return None


def build(cache: Path | None = None) -> Path:
    wheel = torch_wheel()
    if wheel is None:
        raise RuntimeError(f"no torch {TORCH} wheel for this Python on this machine (pip's find-links or cache)")
    key = hashlib.sha256(f"{wheel.name}\n{NVML}".encode()).hexdigest()[:12]
    house = (cache or cache_dir()) / f"wheelhouse-{key}"
    if (house / ".complete").is_file():
        return house
    partial = house.with_name(f"{house.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(partial),
                    str(wheel), f"nvidia-ml-py=={NVML}"], check=True, timeout=600, stdin=subprocess.DEVNULL)
    (partial / ".complete").write_text("")
    try:
        partial.rename(house)
    except OSError:  # built meanwhile by another run: keep theirs
        shutil.rmtree(partial, ignore_errors=True)
    return house
