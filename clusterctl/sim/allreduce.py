"""The interconnect benchmark on lab nodes: what `torchrun ... -m workloads.allreduce` prints there.

No tensor moves. The nodes of one job meet as real ranks would, at the job's static
rendezvous (`--master-addr`, `--master-port`): every node's exec request waits here until
all `--nnodes` have joined (or RENDEZVOUS_S real seconds pass, and then it fails as torchrun
does), then each prints the same document workloads/allreduce/bench.py prints. The job's
figure is limited by its slowest node, as a collective is:

- a node's inter-node limit is its InfiniBand rails: NCCL stripes the collective across every
  NIC, so it runs at the slowest active port's rate times the number of active ports
  (a DOWN port's GPU borrows another NIC); NDR is 400 Gb/s (50 GB/s) a port, ≈ 48 GB/s of it data;
- with more than one GPU per node, the intra-node NVLink ring caps it at ≈ 370 GB/s (H100 ring);
- per message size the figure climbs towards that peak as size / (size + HALF_PEAK_BYTES), the
  latency-bound shape nccl-tests shows, with a small deterministic per-job jitter.

So an `ib_degraded` port (or several DOWN ones) slows every pair its node is in, and only those.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from clusterctl.sim.node import IB_PORTS, NodeHardware
from clusterctl.sim.torchrun import first_int, parse_torchrun

SCHEMA = "allreduce/v1"
RENDEZVOUS_S = 60.0
NIC_EFFICIENCY = 0.96  # 48 GB/s of NDR 400's 50 GB/s line rate
NVLINK_RING_GBS = 370.0
HALF_PEAK_BYTES = 16 << 20


@dataclass(frozen=True)
class AllreduceJob:
    nnodes: int
    node_rank: int
    nproc: int
    master: tuple[str, str]
    min_bytes: int
    max_bytes: int
    iters: int
    warmup: int
    node: str | None


def parse_allreduce(command: str) -> AllreduceJob | None:
    """The benchmark a shell command starts, or None when it starts none."""
    call = parse_torchrun(command, "workloads.allreduce")
    if call is None:
        return None
    launcher = argparse.ArgumentParser(add_help=False)
    launcher.add_argument("--nnodes", default="1")
    launcher.add_argument("--node-rank", "--node_rank", default="0")
    launcher.add_argument("--nproc-per-node", "--nproc_per_node", default="1")
    launcher.add_argument("--master-addr", "--master_addr", default="127.0.0.1")
    launcher.add_argument("--master-port", "--master_port", default="29500")
    bench = argparse.ArgumentParser(add_help=False)
    bench.add_argument("--min-bytes", type=int, default=1 << 20)
    bench.add_argument("--max-bytes", type=int, default=1 << 30)
    bench.add_argument("--iters", type=int, default=20)
    bench.add_argument("--warmup", type=int, default=5)
    try:
        outer, _ = launcher.parse_known_args(call.launcher_args)
        inner, _ = bench.parse_known_args(call.script_args)
        nproc = 8 if outer.nproc_per_node in ("gpu", "auto") else first_int(outer.nproc_per_node)
        return AllreduceJob(
            nnodes=max(1, first_int(outer.nnodes)), node_rank=first_int(outer.node_rank), nproc=max(1, nproc),
            master=(outer.master_addr, str(outer.master_port)), min_bytes=max(4, inner.min_bytes),
            max_bytes=max(4, min(inner.max_bytes, 1 << 34)), iters=max(1, inner.iters), warmup=max(0, inner.warmup),
            node=call.env.get("CLUSTERCTL_NODE"),
        )
    except (SystemExit, ValueError):
        return None


def node_peak_gbs(hw: NodeHardware, nproc: int) -> float:
    """The bus bandwidth this node can sustain in an inter-node all-reduce."""
    active = [p for p in hw.ib_ports() if p["state"].endswith("ACTIVE")]
    if not active:
        return 0.0
    slowest = min(int(p["rate"].split()[0]) for p in active)
    rails = len(active) * slowest / 8 * NIC_EFFICIENCY
    peak = min(rails, NVLINK_RING_GBS) if nproc > 1 else rails
    for params in hw.faults_of("ib_slow"):
        peak *= float(params["factor"])
    # NCCL stripes over every rail, so the collective waits for the slowest: a degrading port slows all of it.
    return peak * (1 - max(hw.link_loss(n) for n in range(IB_PORTS)))


@dataclass
class _Rendezvous:
    nnodes: int
    members: dict[int, NodeHardware] = field(default_factory=dict)
    full: asyncio.Event = field(default_factory=asyncio.Event)


_meetings: dict[tuple[str, str], _Rendezvous] = {}


def document(job: AllreduceJob, members: dict[int, NodeHardware], node: str) -> dict[str, object]:
    world = job.nnodes * job.nproc
    peak = min(node_peak_gbs(hw, job.nproc) for hw in members.values())
    seed = ",".join(hw.name for _, hw in sorted(members.items()))
    jitter = 0.97 + 0.03 * int(hashlib.sha256(seed.encode()).hexdigest()[:4], 16) / 0xFFFF
    results = []
    size = job.min_bytes
    while size <= job.max_bytes:
        busbw = peak * jitter * size / (size + HALF_PEAK_BYTES)
        algbw = busbw * world / (2 * (world - 1)) if world > 1 else busbw
        seconds = size / (algbw * 1e9) if algbw > 0 else 0.0
        results.append({"bytes": size, "time_us": round(seconds * 1e6, 2), "algbw_gbs": round(algbw, 4),
                        "busbw_gbs": round(busbw, 4), "correct": True})
        size *= 2
    return {"clusterctl": SCHEMA, "node": node, "node_rank": job.node_rank, "world_size": world,
            "nnodes": job.nnodes, "backend": "nccl", "dtype": "float32", "results": results,
            "busbw_gbs": max((r["busbw_gbs"] for r in results), default=0.0), "correct": True}


async def run_allreduce(hw: NodeHardware, job: AllreduceJob, write: Callable[[str], Awaitable[None]],
                        error: Callable[[str], Awaitable[None]], rendezvous_s: float = RENDEZVOUS_S) -> int:
    """Join the job's rendezvous, then print the job's figures; the exit status torchrun would give."""
    meeting = _meetings.setdefault(job.master, _Rendezvous(job.nnodes))
    if meeting.nnodes != job.nnodes or job.node_rank in meeting.members or not 0 <= job.node_rank < job.nnodes:
        await error(f"torchrun: node rank {job.node_rank} cannot join {job.master[0]}:{job.master[1]} "
                    f"({len(meeting.members)} of {meeting.nnodes} nodes there)\n")
        return 1
    meeting.members[job.node_rank] = hw
    if len(meeting.members) == meeting.nnodes:
        meeting.full.set()
        _meetings.pop(job.master, None)  # the next job on this address and port meets afresh
    try:
        await asyncio.wait_for(meeting.full.wait(), rendezvous_s)
    except TimeoutError:
        await error(f"torchrun: rendezvous at {job.master[0]}:{job.master[1]} timed out with "
                    f"{len(meeting.members)} of {job.nnodes} nodes\n")
        return 1
    finally:
        if not meeting.full.is_set():
            meeting.members.pop(job.node_rank, None)
            if not meeting.members and _meetings.get(job.master) is meeting:
                del _meetings[job.master]
    await write(json.dumps(document(job, meeting.members, job.node or hw.name)) + "\n")
    return 0
