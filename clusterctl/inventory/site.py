"""The resolved site: every rack and node with its settings merged, as commands use them.

Nodes are plain slotted dataclasses sharing their validated settings objects, so a
100,000-GPU site costs one small object per node, not a re-validated model each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterctl.errors import Problem
from clusterctl.inventory.models import (
    BMC,
    SSH,
    BiosProfile,
    FirmwareTarget,
    Hardware,
    Scheduler,
    Site,
    Software,
)
from clusterctl.inventory.secrets import SecretPolicy, resolve_path


@dataclass(slots=True)
class Rack:
    name: str
    hall: str
    row: str
    power_budget_w: int | None
    cooling_w: int | None
    max_rebooting: int
    source: str
    defaults: Mapping[str, Any] = field(default_factory=dict, repr=False)
    nodes: list[str] = field(default_factory=list)
    at: tuple[int | None, int | None] = (None, None)
    """Line and column of the rack entry in the inventory file."""


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    group: str
    role: str
    rack: str
    hall: str
    row: str
    index: int
    """0-based position in its group."""
    slot: int
    """1-based position in its rack."""
    bmc: BMC
    ssh: SSH
    hardware: Hardware
    firmware: Mapping[str, FirmwareTarget]
    bios_profile: str | None
    bios: Mapping[str, Any]
    """BIOS attributes to apply: the profile's, then the node settings' `bios` on top."""
    software: Software
    scheduler: Scheduler
    source: str
    """file:line of the group (or override) that defined the node."""

    @property
    def gpus(self) -> int:
        return self.hardware.gpu_count

    def summary(self) -> dict[str, Any]:
        """The row `inventory show` prints; JSON-able, no secrets."""
        gpu = self.hardware.gpu
        return {
            "name": self.name,
            "group": self.group,
            "role": self.role,
            "rack": self.rack,
            "bmc": self.bmc.endpoint,
            "bmc_vendor": self.bmc.vendor,
            "host": self.ssh.endpoint,
            "gpus": self.gpus,
            "gpu_model": gpu.model if gpu else None,
        }


@dataclass
class Inventory:
    path: Path
    site: Site
    racks: dict[str, Rack]
    nodes: dict[str, Node]
    groups: dict[str, list[str]]
    bios_profiles: dict[str, BiosProfile]
    secrets: SecretPolicy
    warnings: list[Problem] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def node_count(self) -> int:
        return len(self.nodes)

    @property
    def gpu_count(self) -> int:
        return sum(n.gpus for n in self.nodes.values())

    @property
    def rack_count(self) -> int:
        return len(self.racks)

    def resolve_path(self, text: str) -> Path:
        """A path from the inventory (`ca_file`, `known_hosts`): `~` expanded, relative to the file."""
        return resolve_path(text, self.base_dir)

    def select(self, limit: str | None) -> list[Node]:
        from clusterctl.inventory.select import select

        return select(self, limit)

    def counts(self) -> dict[str, int]:
        return {"nodes": self.node_count, "gpus": self.gpu_count, "racks": self.rack_count}
