"""The burn-in on a lab node: what `torchrun ... -m workloads.transformer ...` prints there.

No model runs: every rank of the node emits the JSON lines workloads/transformer/train.py
would (`"clusterctl": "burnin/v1"`, start / step / checksum / end), shaped by the node's
faults so the burn-in verdict has something real to judge:

- healthy: throughput near the model's H100 figure, loss falling, and the same parameter
  checksum on every rank of the run (derived from run and step);
- gpu_slow: that GPU's rank reports `factor` of the speed;
- thermal_throttle: that rank reports the GPU's clock-event bits (HW/SW thermal) and 0.6 of the speed;
- xid with a code the NVIDIA catalog says stops the GPU (48, 74, 79, 94, 95), gpu_missing:
  that rank stops reporting part-way (no end event);
- ecc_uncorrectable: that rank's checksums differ from the others'.

The burn-in's own `hang` fault (CLUSTERCTL_BURNIN_FAULT=hang[:rank=R][:node=N][:step=S], as
workloads/transformer/faults.py reads it) hangs the whole job as a real one would: at step S every
rank stops; after the stall timeout (--stall-timeout or CLUSTERCTL_STALL_TIMEOUT, simulated seconds) the hung rank
reports a `stall` outside any collective and every other rank one inside the gradient all-reduce,
then they wait until the controller ends the job (or MAX_REAL_S).

Only the faulty rank stops: a real torchrun would tear the whole job down, and the verdict then
relies on torchrun's failure summary to name the node; the lab skips that step.
Simulated time runs `time_scale` times faster than real time, and a run never lasts more than
MAX_REAL_S real seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clusterctl.sim.fake_nvml import reason_mask
from clusterctl.sim.node import GPU_COUNT, NodeHardware
from clusterctl.sim.torchrun import first_int, parse_torchrun

MAX_REAL_S = 120.0
MAX_STEPS = 1_000_000
STOPPING_XIDS = {48, 74, 79, 94, 95}
# Local tokens/s per H100 for each model (bf16, no torch.compile): the healthy speed the lab reports.
TOKENS_PER_S = {"transformer-tiny": 900_000.0, "transformer-small": 420_000.0, "transformer-base": 150_000.0,
                "transformer-big": 60_000.0}
TOKENS_PER_MICRO_BATCH = {"transformer-tiny": 1024, "transformer-small": 4096}
PARAMS = {"transformer-tiny": 214_016, "transformer-small": 10_500_000, "transformer-base": 63_000_000,
          "transformer-big": 213_000_000}
STALL_TIMEOUT_S = 120.0
HANG_PROBE_S = 0.5
_HUNG_STACK = ["workloads/transformer/faults.py:68 before_step", "workloads/transformer/train.py:259 train"]
_WAITING_STACK = ["torch/autograd/graph.py:829 _engine_run_backward", "torch/autograd/__init__.py:364 backward",
                  "torch/_tensor.py:630 backward", "workloads/transformer/train.py:276 train"]


@dataclass(frozen=True)
class BurninJob:
    nproc: int
    nnodes: int
    node_rank: int
    model: str
    steps: int | None
    duration_s: float | None
    log_every: int
    checksum_every: int
    accum: int
    env: Mapping[str, str]

    @property
    def world_size(self) -> int:
        return self.nproc * self.nnodes


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)


def parse_burnin(command: str) -> BurninJob | None:
    """The burn-in a shell command starts, or None when it starts none."""
    call = parse_torchrun(command, "workloads.transformer")
    if call is None:
        return None
    env = call.env
    launcher = argparse.ArgumentParser(add_help=False)
    launcher.add_argument("--nproc-per-node", "--nproc_per_node", default="1")
    launcher.add_argument("--nnodes", default="1")
    launcher.add_argument("--node-rank", "--node_rank", default=None)
    trainer = argparse.ArgumentParser(add_help=False)
    trainer.add_argument("--model", default="transformer-tiny")
    trainer.add_argument("--steps", type=int, default=None)
    trainer.add_argument("--duration", type=_duration, default=None)
    trainer.add_argument("--log-every", type=int, default=10)
    trainer.add_argument("--checksum-every", type=int, default=50)
    trainer.add_argument("--accum", type=int, default=2)
    trainer.add_argument("--stall-timeout", type=_duration, default=None)
    try:
        outer, _ = launcher.parse_known_args(call.launcher_args)
        inner, _ = trainer.parse_known_args(call.script_args)
        nproc = GPU_COUNT if outer.nproc_per_node in ("gpu", "auto") else first_int(outer.nproc_per_node)
        node_rank = first_int(outer.node_rank if outer.node_rank is not None else env.get("NODE_RANK", "0"))
        return BurninJob(
            nproc=max(1, min(nproc, GPU_COUNT)), nnodes=max(1, first_int(outer.nnodes)), node_rank=node_rank,
            model=inner.model, steps=inner.steps if inner.steps or inner.duration else 100,
            duration_s=inner.duration, log_every=max(1, inner.log_every),
            checksum_every=max(1, inner.checksum_every), accum=max(1, inner.accum),
            env=env if inner.stall_timeout is None else {**env, "CLUSTERCTL_STALL_TIMEOUT": str(inner.stall_timeout)},
        )
    except (SystemExit, ValueError):
        return None


def checksum(run: str, step: int, corrupt: str = "") -> str:
    return hashlib.sha256(f"{run}:{step}:{corrupt}".encode()).hexdigest()[:16]


def _rank_shapes(hw: NodeHardware, job: BurninJob) -> list[dict[str, Any]]:
    """Per local rank: speed factor, clock-event bits, when it stops (fraction of the run), corrupt."""
    gpus = {g["index"]: g for g in hw.nvml()}
    stops = {int(p["gpu"]) for p in hw.faults_of("xid") if int(p["code"]) in STOPPING_XIDS}
    corrupt = {int(p["gpu"]) for p in hw.faults_of("ecc_uncorrectable")}
    shapes = []
    for local in range(job.nproc):
        gpu = gpus.get(local)
        shapes.append({
            "gpu": gpu,
            "factor": float(gpu["perf_factor"]) if gpu else 1.0,
            "bits": reason_mask(gpu["clocks_event_reasons"]) if gpu else 0,
            "stop_at": 0.0 if gpu is None else (0.4 if local in stops else None),
            "corrupt": local in corrupt,
        })
    return shapes


@dataclass(frozen=True)
class Hang:
    step: int
    hung: frozenset[int]
    """Global ranks of this node that hang; the node's other ranks wait for them (or for another node's)."""
    stall_s: float


def _hang(job: BurninJob, node: str, ranks: list[int]) -> Hang | None:
    """The job's `hang` fault as this node sees it, or None."""
    kind, *pairs = job.env.get("CLUSTERCTL_BURNIN_FAULT", "").strip().split(":")
    if kind != "hang":
        return None
    params = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    try:
        step = max(1, int(params.get("step", 0)))
        stall_s = float(job.env.get("CLUSTERCTL_STALL_TIMEOUT", STALL_TIMEOUT_S))
        hung = frozenset(r for r in ranks if ("rank" not in params or int(params["rank"]) == r)
                         and params.get("node", node) == node)
    except ValueError:
        return None
    return Hang(step, hung, stall_s)


async def _hang_forever(hang: Hang, ranks: list[int], line: Callable[..., str], time_scale: float,
                        write: Callable[[str], Awaitable[None]]) -> int:
    """Every rank stalls at hang.step; report where after the stall timeout, then wait to be ended."""
    await asyncio.sleep(min(hang.stall_s / time_scale, MAX_REAL_S))
    if hang.stall_s > 0:
        await write("".join(line(r, "stall", step=hang.step, where="compute" if r in hang.hung else "collective",
                                 phase="step" if r in hang.hung else "gradient-all-reduce",
                                 stalled_s=hang.stall_s, stack=_HUNG_STACK if r in hang.hung else _WAITING_STACK)
                            + "\n" for r in ranks))
    waited = 0.0
    while waited < MAX_REAL_S:  # a write to a closed channel raises: the controller ended the job
        await asyncio.sleep(HANG_PROBE_S)
        waited += HANG_PROBE_S
        await write("")
    return 124  # as the `timeout` wrapper around a real torchrun would


def _plan(job: BurninJob, time_scale: float) -> tuple[int, float]:
    """(steps, simulated seconds per step)."""
    micro = TOKENS_PER_MICRO_BATCH.get(job.model, 25_000)
    step_s = micro * job.accum / TOKENS_PER_S.get(job.model, 150_000.0)
    steps = job.steps or max(10, int((job.duration_s or 0) / step_s) // 10 * 10)
    steps = min(steps, MAX_STEPS, max(1, int(MAX_REAL_S * time_scale / step_s)))
    return steps, step_s


async def run_burnin(hw: NodeHardware, job: BurninJob, time_scale: float,
                     write: Callable[[str], Awaitable[None]]) -> int:
    """Emit every rank's lines through `write`; the exit status torchrun would give."""
    run = job.env.get("CLUSTERCTL_RUN", "adhoc")
    node = job.env.get("CLUSTERCTL_NODE") or hw.name
    shapes = _rank_shapes(hw, job)
    steps, step_s = _plan(job, time_scale)
    micro = TOKENS_PER_MICRO_BATCH.get(job.model, 25_000)
    healthy = TOKENS_PER_S.get(job.model, 150_000.0)
    ranks = [job.node_rank * job.nproc + local for local in range(job.nproc)]

    def line(rank: int, event: str, **fields: Any) -> str:
        return json.dumps({"clusterctl": "burnin/v1", "run": run, "node": node, "rank": rank,
                           "world_size": job.world_size, "event": event, "time": round(time.time(), 3), **fields})

    hang = _hang(job, node, ranks)
    alive = [shape["stop_at"] != 0.0 for shape in shapes]
    await write("".join(line(r, "start", model=job.model, params=PARAMS.get(job.model), device=f"cuda:{i}",
                             dtype="bf16", accum=job.accum, tokens_per_micro_batch=micro, seq_len=128, fault=None)
                        + "\n" for i, r in enumerate(ranks)))
    pause = step_s * job.log_every / time_scale
    for step in range(1, steps + 1):
        if hang is not None and step == hang.step:
            return await _hang_forever(hang, [r for i, r in enumerate(ranks) if alive[i]], line, time_scale, write)
        lines = []
        for i, (rank, shape) in enumerate(zip(ranks, shapes, strict=True)):
            if shape["stop_at"] is not None and step > steps * shape["stop_at"]:
                alive[i] = False
            if not alive[i]:
                continue
            if step % job.log_every == 0 or step == 1:
                lines.append(line(rank, "step", **_step_fields(step, steps, rank, shape, step_s, micro, healthy, job)))
            if step % job.checksum_every == 0 or (step == steps and step % job.checksum_every):
                lines.append(line(rank, "checksum", step=step, checksum=checksum(run, step, f"rank{rank}"
                                                                                  if shape["corrupt"] else "")))
        if step == steps:
            lines += [line(r, "end", status="done", steps=steps) for i, r in enumerate(ranks) if alive[i]]
        if lines:
            await write("".join(s + "\n" for s in lines))
        if step % job.log_every == 0:
            await asyncio.sleep(pause)
    return 0 if all(alive) else 1


def _step_fields(step: int, steps: int, rank: int, shape: dict[str, Any], step_s: float, micro: int,
                 healthy: float, job: BurninJob) -> dict[str, Any]:
    jitter = 1.0 + 0.01 * math.sin(rank * 7.0 + step * 0.37)
    local = healthy * shape["factor"] * jitter
    loss = 0.6 + 9.4 * math.exp(-3.0 * step / steps) + 0.005 * math.sin(rank + step)
    gpu = shape["gpu"] or {}
    return {
        "step": step, "loss": round(loss, 5), "grad_norm": round(1.0 + 4.0 * math.exp(-step / steps), 4),
        "lr": round(1e-3 * min(1.0, step / 50), 8), "step_time_s": round(step_s / shape["factor"], 6),
        "tokens_per_s": round(micro * job.accum * shape["factor"] / step_s, 1),
        "local_tokens_per_s": round(local, 1),
        "gpu_temp_c": gpu.get("temperature_c"), "gpu_power_w": gpu.get("power_w"),
        "gpu_sm_clock_mhz": (gpu.get("clocks") or {}).get("sm_mhz"), "gpu_throttle_reasons": shape["bits"],
    }
