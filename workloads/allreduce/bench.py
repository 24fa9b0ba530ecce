"""Measure torch.distributed all_reduce over doubling message sizes and print one JSON line.

The same code runs NCCL on GPUs and gloo on CPUs, so the controller's orchestration and
judgement are tested here without GPUs. Figures follow nccl-tests' definitions
(github.com/NVIDIA/nccl-tests, doc/PERFORMANCE.md): algbw = bytes / time, and
busbw = algbw · 2(n−1)/n for all_reduce, which makes busbw comparable with the slowest
link's bandwidth whatever the number of ranks n.

Every rank's time is all-reduced with MAX before it is reported, because a collective is as
slow as its slowest rank; every node's local rank 0 prints the same document. The sweep is
bounded by --max-bytes, --iters and --time-limit (checked collectively, so all ranks stop
at the same size).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

SCHEMA = "allreduce/v1"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workloads.allreduce", description=__doc__.splitlines()[0])
    parser.add_argument("--min-bytes", type=int, default=1 << 20)
    parser.add_argument("--max-bytes", type=int, default=1 << 30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--time-limit", type=float, default=60.0, help="Seconds; no new size starts after it.")
    parser.add_argument("--timeout", type=float, default=120.0, help="Seconds a collective may wait for a peer.")
    args = parser.parse_args(argv)
    if not 4 <= args.min_bytes <= args.max_bytes <= 1 << 34:
        parser.error("need 4 <= --min-bytes <= --max-bytes <= 16 GiB")
    if not (0 <= args.warmup <= 1000 and 1 <= args.iters <= 10_000):
        parser.error("--warmup 0..1000 and --iters 1..10000")
    return args


def sizes(low: int, high: int) -> list[int]:
    out = []
    size = low
    while size <= high:
        out.append(size - size % 4)
        size *= 2
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(size: int, warmup: int, iters: int, device: torch.device, world: int) -> dict[str, Any]:
    """One size: correctness of one reduction, then the timed loop; the slowest rank's time."""
    buffer = torch.ones(size // 4, dtype=torch.float32, device=device)
    dist.all_reduce(buffer)
    correct = bool(torch.all(buffer == float(world)).item())
    for _ in range(warmup):
        dist.all_reduce(buffer)
    _sync(device)
    dist.barrier()
    started = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(buffer)
    _sync(device)
    elapsed = torch.tensor([time.perf_counter() - started], dtype=torch.float64, device=device)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    seconds = float(elapsed.item()) / iters
    algbw = size / seconds / 1e9
    return {"bytes": size, "time_us": round(seconds * 1e6, 2), "algbw_gbs": round(algbw, 4),
            "busbw_gbs": round(algbw * 2 * (world - 1) / world, 4), "correct": correct}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=args.timeout))
    try:
        world = dist.get_world_size()
        results = []
        spent = 0.0
        for size in sizes(args.min_bytes, args.max_bytes):
            result = measure(size, args.warmup, args.iters, device, world)
            results.append(result)
            spent += result["time_us"] * (args.iters + args.warmup) / 1e6  # the same on every rank
            if spent > args.time_limit:
                break
        if local_rank == 0:
            print(json.dumps({
                "clusterctl": SCHEMA, "node": os.environ.get("CLUSTERCTL_NODE") or socket.gethostname(),
                "node_rank": int(os.environ.get("GROUP_RANK", "0")), "world_size": world,
                "nnodes": world // int(os.environ.get("LOCAL_WORLD_SIZE", "1")), "backend": backend,
                "dtype": "float32", "results": results,
                "busbw_gbs": max(r["busbw_gbs"] for r in results),
                "correct": all(r["correct"] for r in results),
            }), flush=True)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
