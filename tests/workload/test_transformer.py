"""The burn-in workload: faithful sizes, and real data-parallel training on CPU with gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from workloads.transformer.configs import PAPER_PARAMS, get_config  # noqa: E402
from workloads.transformer.model import Transformer, sequence_loss  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_parameter_count_matches_the_paper(name: str) -> None:
    # In a subprocess: other tests import ansible, whose sys.intern patch breaks torch's meta-device mode.
    out = subprocess.run([sys.executable, "-m", "workloads.transformer", "--model", name, "--params-only"],
                         capture_output=True, text=True, cwd=REPO, check=True, timeout=120)
    params = int(out.stdout.strip())
    assert abs(params - PAPER_PARAMS[name]) / PAPER_PARAMS[name] <= 0.03, params


def test_embeddings_are_shared_and_decoder_is_causal() -> None:
    cfg = get_config("transformer-tiny")
    model = Transformer(cfg).eval()
    src = torch.randint(2, cfg.vocab_size, (2, cfg.seq_len))
    tgt = torch.randint(2, cfg.vocab_size, (2, cfg.seq_len))
    logits = model(src, tgt)
    # Changing a later target token must not change earlier positions' outputs.
    tgt2 = tgt.clone()
    tgt2[:, -1] = (tgt2[:, -1] + 1) % cfg.vocab_size
    assert torch.allclose(model(src, tgt2)[:, :-1], logits[:, :-1], atol=1e-5)
    assert not torch.allclose(model(src, tgt2)[:, -1], logits[:, -1])
    assert sum(p.data_ptr() == model.embed.weight.data_ptr() for p in model.parameters()) == 1
    loss = sequence_loss(logits, tgt, cfg.label_smoothing)
    assert torch.isfinite(loss)


def _torchrun(nproc: int, *args: str, env: dict[str, str] | None = None) -> list[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--standalone",
           "-m", "workloads.transformer", "--model", "transformer-tiny", "--threads", "1", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=full_env, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"clusterctl"')]


@pytest.mark.parametrize("nproc", [2, 4])
def test_gloo_training_learns_and_replicas_agree(nproc: int) -> None:
    lines = _torchrun(nproc, "--steps", "60", "--log-every", "10", "--checksum-every", "30")
    steps = [r for r in lines if r["event"] == "step" and r["rank"] == 0]
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.5
    by_step: dict[int, set[str]] = {}
    for r in lines:
        if r["event"] == "checksum":
            by_step.setdefault(r["step"], set()).add(r["checksum"])
    assert sorted(by_step) == [30, 60]
    assert all(len(sums) == 1 for sums in by_step.values())
    assert {r["rank"] for r in lines if r["event"] == "end"} == set(range(nproc))


def test_fault_hooks_slow_one_rank_and_corrupt_another() -> None:
    lines = _torchrun(2, "--steps", "30", "--log-every", "10", "--checksum-every", "10",
                      env={"CLUSTERCTL_BURNIN_FAULT": "slow:rank=1:factor=4"})
    last = {r["rank"]: r for r in lines if r["event"] == "step" and r["step"] == 30}
    assert last[1]["local_tokens_per_s"] < 0.5 * last[0]["local_tokens_per_s"]

    lines = _torchrun(2, "--steps", "20", "--log-every", "10", "--checksum-every", "10",
                      env={"CLUSTERCTL_BURNIN_FAULT": "corrupt:rank=1:step=5"})
    sums = {r["rank"]: r["checksum"] for r in lines if r["event"] == "checksum" and r["step"] == 20}
    assert sums[0] != sums[1]
