"""What the inventory says a node should be, in the terms the checks compare against."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clusterctl.inventory.site import Node

SOFTWARE = ("driver", "cuda", "nccl", "ofed", "fabricmanager", "dcgm")


@dataclass(frozen=True, slots=True)
class Expectation:
    node: str
    rack: str | None = None
    gpu_model: str | None = None
    gpu_count: int = 0
    nvlink: bool = False
    ib_hcas: int | None = None
    ib_rate_gbps: int | None = None
    software: Mapping[str, str] = field(default_factory=dict)
    psus: int | None = None
    max_power_w: int | None = None

    @classmethod
    def from_node(cls, node: Node) -> Expectation:
        hw = node.hardware
        ib = hw.infiniband
        return cls(
            node=node.name,
            rack=node.rack,
            gpu_model=hw.gpu.model if hw.gpu else None,
            gpu_count=hw.gpu_count,
            nvlink=bool(hw.gpu and hw.gpu.nvlink),
            ib_hcas=ib.hcas if ib else None,
            ib_rate_gbps=ib.rate_gbps if ib else None,
            software={k: v for k in SOFTWARE if (v := getattr(node.software, k, None))},
            psus=hw.psus,
            max_power_w=hw.max_power_w,
        )
