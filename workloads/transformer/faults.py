"""Deliberate faults for testing the burn-in verdict on machines with no broken hardware.

Set `CLUSTERCTL_BURNIN_FAULT` to `KIND[:key=value...]`, for example
`slow:rank=1:factor=3`. Keys: `rank` (global rank; default every rank), `node` (the
CLUSTERCTL_NODE name), `step` (first step it acts on; default 0), `factor` (slow only).
Kinds:
  slow     local compute takes `factor` times as long (a sleep after each micro-step)
  corrupt  one parameter element changes on that rank at `step`: replicas diverge,
           the cross-replica checksum exposes it (silent data corruption)
  nan      the loss becomes NaN from `step` on
  crash    the rank exits with status 3 at `step`
  hang     the rank stops making progress at `step` (sleeps until killed, an hour at most)
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Fault:
    kind: str
    step: int = 0
    factor: float = 1.0

    def active(self, step: int) -> bool:
        return step >= self.step


KINDS = {"slow", "corrupt", "nan", "crash", "hang"}
HANG_LIMIT_S = 3600.0
"""A hung rank gives up (exit 4) after this long if nothing killed it."""


def from_env(rank: int, node: str) -> Fault | None:
    spec = os.environ.get("CLUSTERCTL_BURNIN_FAULT", "").strip()
    if not spec:
        return None
    kind, *pairs = spec.split(":")
    params = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    if kind not in KINDS:
        raise SystemExit(f"CLUSTERCTL_BURNIN_FAULT: unknown kind {kind!r}; choose one of {sorted(KINDS)}")
    if "rank" in params and int(params["rank"]) != rank:
        return None
    if "node" in params and params["node"] != node:
        return None
    return Fault(kind, step=int(params.get("step", 0)), factor=float(params.get("factor", 3.0)))


def after_local_compute(fault: Fault | None, step: int, elapsed_s: float) -> None:
    if fault and fault.kind == "slow" and fault.active(step):
        time.sleep(elapsed_s * (fault.factor - 1.0))


def before_step(fault: Fault | None, step: int, model: torch.nn.Module) -> None:
    # One-shot faults act at `step`; the default 0 means the first step (steps count from 1).
    if not fault or max(fault.step, 1) != step:
        return
    if fault.kind == "crash":
        sys.stderr.write(f"burn-in fault: crashing at step {step}\n")
        sys.stderr.flush()
        os._exit(3)
    if fault.kind == "hang":
        # Until the launcher's timeout kills the rank; bounded, so an orphaned rank cannot sleep forever.
        deadline = time.monotonic() + HANG_LIMIT_S
        while time.monotonic() < deadline:
            time.sleep(1)
        os._exit(4)
    if fault.kind == "corrupt":
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] += 1e-3


def poison_loss(fault: Fault | None, step: int, loss: torch.Tensor) -> torch.Tensor:
    if fault and fault.kind == "nan" and fault.active(step):
        return loss * float("nan")
    return loss
