"""Data-parallel training of the Transformer as a burn-in, reporting JSON lines per rank.

Runs under torchrun (NCCL on GPUs, gloo on CPUs) or as a single process. Every line on
stdout that a rank reports is one JSON object with `"clusterctl": "burnin/v1"`, so that
launchers can pick them out of mixed logs (srun, kubectl logs, ssh).

Straggler detection needs each rank's own speed, but DDP makes every rank wait for the
slowest in the gradient all-reduce. So each step runs `accum` micro-batches, the first
accum-1 under `no_sync()` (pure local compute, timed per rank: `local_tokens_per_s`),
the last one synchronising gradients (the step as the job sees it: `tokens_per_s`).

A rank that hangs makes every other rank wait for it, so all of them stop reporting at the
same step. `StallWatchdog` tells them apart: after `--stall-timeout` seconds without step
progress it reports, once per stall, where the main thread is (`stall` event: its phase and
top stack frames). Ranks waiting for a peer sit in a collective (the gradient all-reduce, the
stop vote); the rank that hung sits elsewhere, and the verdict names its node.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import sys
import threading
import time
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from workloads.transformer import faults, telemetry
from workloads.transformer.configs import get_config
from workloads.transformer.data import ReversePermuteTask
from workloads.transformer.model import Transformer, count_parameters, flops_per_token, sequence_loss

# A stall report after this long without step progress; 0 turns the watchdog off.
STALL_TIMEOUT_S = float(os.environ.get("CLUSTERCTL_STALL_TIMEOUT", "120"))
STALL_FRAMES = 12
# Phases of a step in which a rank may be waiting for its peers (on GPUs the host waits at the next
# synchronize, not inside torch.distributed, so the stack alone cannot say it).
COLLECTIVE_PHASES = {"gradient-all-reduce", "stop-vote"}
_COLLECTIVE_FILES = ("torch/distributed/", "torch/nn/parallel/distributed.py")

# Dense bf16 peak, for MFU: NVIDIA's H100 and A100 datasheets (nvidia.com/en-us/data-center/h100/, .../a100/) give
# 1,979 and 624 TFLOPS with sparsity, half that dense; the H200 has the H100's compute. Unknown devices report no MFU.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m workloads.transformer", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="transformer-tiny")
    p.add_argument("--params-only", action="store_true", help="print the parameter count and exit")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--duration", type=parse_duration, default=None, help="e.g. 90s, 30m, 2h")
    p.add_argument("--tokens-per-step", type=int, default=None, help="source tokens per micro-batch per rank")
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--accum", type=int, default=2, help="micro-batches per step (>= 2 to time ranks alone)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--checksum-every", type=int, default=50)
    p.add_argument("--lr-scale", type=float, default=1.0, help="multiplies the paper's schedule")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per rank")
    p.add_argument("--stall-timeout", type=parse_duration, default=STALL_TIMEOUT_S,
                   help="report where a rank is stuck after this long without progress (0: never) "
                        "[default: $CLUSTERCTL_STALL_TIMEOUT or 120s]")
    args = p.parse_args(argv)
    if args.steps is None and args.duration is None:
        args.steps = 100
    return args


class Reporter:
    def __init__(self, rank: int, world: int, node: str, run: str) -> None:
        self.base = {"clusterctl": "burnin/v1", "run": run, "node": node, "rank": rank, "world_size": world}
        self._lock = threading.Lock()  # the watchdog reports from its own thread

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({**self.base, "event": event, "time": round(time.time(), 3), **fields})
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def _frame_name(filename: str, lineno: int, function: str) -> str:
    path = filename.replace("\\", "/")
    for root in ("/torch/", "/workloads/"):
        if root in path:
            path = root[1:] + path.split(root, 1)[1]
            break
    else:
        path = path.rsplit("/", 1)[-1]
    return f"{path}:{lineno} {function}"


def main_thread_stack(limit: int = STALL_FRAMES) -> list[str]:
    """The main thread's innermost `limit` frames, innermost first."""
    frame = sys._current_frames().get(threading.main_thread().ident or 0)  # noqa: SLF001 - no public API
    stack = []
    while frame is not None and len(stack) < limit:
        stack.append(_frame_name(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    return stack


def stall_place(phase: str, stack: list[str], distributed: bool) -> str:
    """"collective" when the rank is waiting for its peers, else "compute" (it is the one stuck)."""
    if not distributed:
        return "compute"
    if phase in COLLECTIVE_PHASES or any(f.startswith(_COLLECTIVE_FILES) for f in stack):
        return "collective"
    return "compute"


class StallWatchdog:
    """Reports once per stall where the main thread is stuck; a daemon thread, ended by `stop`."""

    def __init__(self, report: Reporter, timeout_s: float, distributed: bool) -> None:
        self.report = report
        self.timeout_s = max(0.0, min(timeout_s, 24 * 3600.0))
        self.distributed = distributed
        self.step = 0
        self.phase = "start"
        self._since = time.monotonic()
        self._reported: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stall-watchdog", daemon=True)

    def start(self) -> None:
        if self.timeout_s > 0:
            self._thread.start()

    def progress(self, step: int) -> None:
        self.step, self.phase, self._since = step, "step", time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _watch(self) -> None:
        poll = min(1.0, self.timeout_s / 4)
        while not self._stop.wait(poll):
            stalled = time.monotonic() - self._since
            if stalled < self.timeout_s or self._reported == self.step:
                continue
            self._reported = self.step
            stack = main_thread_stack()
            self.report.emit("stall", step=self.step, where=stall_place(self.phase, stack, self.distributed),
                             phase=self.phase, stalled_s=round(stalled, 1), stack=stack)


def param_checksum(model: torch.nn.Module) -> str:
    """A bit-exact fingerprint of the parameters, computed on the device.

    Replicas of a data-parallel job hold identical bits after every step; summing the
    raw bits as integers detects any flipped bit without copying 200M parameters to the host.
    """
    total = torch.zeros((), dtype=torch.int64, device=next(model.parameters()).device)
    for p in model.parameters():
        total += p.detach().reshape(-1).view(torch.int32).to(torch.int64).sum()
    return format(int(total.item()) & (2**64 - 1), "016x")


def schedule(d_model: int, warmup: int, scale: float):  # noqa: ANN201
    def lr_at(step: int) -> float:
        step = max(step, 1)
        return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)

    return lr_at


def setup_distributed() -> tuple[int, int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world, local_rank, device


def node_name(rank: int) -> str:
    """The inventory name of this rank's node.

    CLUSTERCTL_RANK_NODES (comma-separated, indexed by rank) lets one machine stand in
    for several nodes, as the local launcher and the tests do; launchers on real nodes
    set CLUSTERCTL_NODE.
    """
    per_rank = [n for n in os.environ.get("CLUSTERCTL_RANK_NODES", "").split(",") if n]
    if rank < len(per_rank):
        return per_rank[rank]
    return os.environ.get("CLUSTERCTL_NODE") or socket.gethostname()


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def train(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in {"tokens_per_step": args.tokens_per_step, "seq_len": args.seq_len,
                                   "warmup_steps": args.warmup}.items() if v is not None}
    cfg = get_config(args.model, **overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, local_rank, device = setup_distributed()
    node = node_name(rank)
    report = Reporter(rank, world, node, os.environ.get("CLUSTERCTL_RUN", "adhoc"))
    fault = faults.from_env(rank, node)
    telemetry.init(local_rank)

    torch.manual_seed(args.seed)  # identical initial weights on every replica
    model = Transformer(cfg).to(device)
    n_params = count_parameters(model)
    # The only buffer (sinusoidal positions) is a constant: broadcasting it before every forward would
    # make the "local" micro-batches wait for the slowest peer, blurring per-rank speed and stall places.
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None,
                                  broadcast_buffers=False) if world > 1 else model
    step_model = torch.compile(ddp) if args.compile else ddp
    opt = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    lr_at = schedule(cfg.d_model, cfg.warmup_steps, args.lr_scale)
    use_bf16 = args.dtype == "bf16" or (args.dtype == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    task = ReversePermuteTask(cfg.vocab_size, cfg.seq_len, seed=args.seed * 100003 + rank)
    flops_tok = flops_per_token(cfg, cfg.seq_len)
    peak = peak_flops(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    accum = max(1, args.accum)

    # host and pid tie NCCL's own log lines ("HOST:PID:TID [DEV] NCCL INFO ...") to this rank, so the verdict can
    # tell which network its all-reduce used; backend says whether there is an NCCL log to look for at all.
    report.emit("start", model=args.model, params=n_params, device=str(device), dtype="bf16" if use_bf16 else "fp32",
                accum=accum, tokens_per_micro_batch=cfg.tokens_per_step, seq_len=cfg.seq_len, fault=fault.kind
                if fault else None, host=socket.gethostname(), pid=os.getpid(),
                backend=str(dist.get_backend()) if world > 1 else None)
    deadline = time.monotonic() + args.duration if args.duration else None
    watchdog = StallWatchdog(report, args.stall_timeout, world > 1)
    watchdog.start()
    step, status = 0, "done"
    while True:
        step += 1
        watchdog.progress(step)
        faults.before_step(fault, step, model)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        sync()
        t0 = time.perf_counter()
        local_tokens, local_time, loss_sum = 0, 0.0, 0.0
        for micro in range(accum):
            src, tgt_in, tgt_out = task.batch(cfg.tokens_per_step, device)
            last = micro == accum - 1
            ctx = ddp.no_sync() if (world > 1 and not last) else contextlib.nullcontext()
            watchdog.phase = "gradient-all-reduce" if last and world > 1 else "local-compute"
            tm = time.perf_counter()
            with ctx, autocast():
                logits = step_model(src, tgt_in)
                loss = faults.poison_loss(fault, step, sequence_loss(logits, tgt_out, cfg.label_smoothing))
            (loss / accum).backward()
            if not last or accum == 1:
                sync()
                elapsed = time.perf_counter() - tm
                faults.after_local_compute(fault, step, elapsed)
                local_time += time.perf_counter() - tm
                local_tokens += src.numel()
            loss_sum += loss.detach().float()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        watchdog.phase = "report"
        step_time = time.perf_counter() - t0

        if step % args.log_every == 0 or step == 1:
            tokens = cfg.tokens_per_step // cfg.seq_len * cfg.seq_len * accum
            loss_value = float(loss_sum) / accum
            fields: dict[str, Any] = {
                "step": step, "loss": loss_value if math.isfinite(loss_value) else str(loss_value),
                "grad_norm": float(grad_norm), "lr": lr_at(step), "step_time_s": round(step_time, 6),
                "tokens_per_s": round(tokens / step_time, 1),
                "local_tokens_per_s": round(local_tokens / local_time, 1) if local_time else None,
            }
            if peak:
                fields["mfu"] = round(tokens * flops_tok / step_time / peak, 4)
            if device.type == "cuda":
                fields["mem_bytes"] = torch.cuda.max_memory_allocated(device)
            fields.update(telemetry.sample())
            report.emit("step", **fields)
        if step % args.checksum_every == 0:
            report.emit("checksum", step=step, checksum=param_checksum(model))
        watchdog.phase = "stop-vote"
        if _should_stop(step, args.steps, deadline, world, device):
            break
    watchdog.stop()
    if step % args.checksum_every:
        report.emit("checksum", step=step, checksum=param_checksum(model))
    report.emit("end", status=status, steps=step)
    if world > 1:
        dist.destroy_process_group()
    return 0


def _should_stop(step: int, steps: int | None, deadline: float | None, world: int, device: torch.device) -> bool:
    if steps is not None and step >= steps:
        return True
    if deadline is None:
        return False
    # Ranks must stop on the same step or the next all-reduce hangs: rank 0's clock decides.
    if step % 10:
        return False
    flag = torch.tensor([1 if time.monotonic() >= deadline else 0], device=device)
    if world > 1:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.params_only:
        cfg = get_config(args.model)
        with torch.device("meta"):
            model = Transformer(cfg)
        print(count_parameters(model))
        return 0
    return train(args)
