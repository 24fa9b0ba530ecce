"""Throughput and MFU of the burn-in Transformer against torch.nn.Transformer of the same size.

Both models get the same embedding (shared, scaled), the same tied output projection, the
same batches, optimizer and precision; only the encoder-decoder stack differs. On a GPU
this runs bf16 autocast (SDPA picks fused kernels); on a CPU fp32 with small batches, which
says little about GPUs but keeps the comparison honest. FLOPs come from
workloads.transformer.model.flops_per_token; MFU is printed where the device's peak is known.

    python benchmarks/workload.py [--models transformer-base,transformer-big] [--steps 10]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workloads.transformer.configs import get_config  # noqa: E402
from workloads.transformer.data import ReversePermuteTask  # noqa: E402
from workloads.transformer.model import Transformer, flops_per_token, sequence_loss  # noqa: E402
from workloads.transformer.train import peak_flops  # noqa: E402


class TorchBaseline(nn.Module):
    """torch.nn.Transformer (post-LN, ReLU, as the paper) between the same embeddings and projection."""

    def __init__(self, cfg) -> None:  # noqa: ANN001
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.core = nn.Transformer(d_model=cfg.d_model, nhead=cfg.n_heads, num_encoder_layers=cfg.n_encoder_layers,
                                   num_decoder_layers=cfg.n_decoder_layers, dim_feedforward=cfg.d_ff,
                                   dropout=cfg.dropout, batch_first=True)
        self.scale = math.sqrt(cfg.d_model)
        self.register_buffer("positions", Transformer(get_config("transformer-tiny", d_model=cfg.d_model,
                                                                 n_heads=1)).positions, persistent=False)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        s = self.embed(src) * self.scale + self.positions[: src.shape[1]]
        t = self.embed(tgt_in) * self.scale + self.positions[: tgt_in.shape[1]]
        mask = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1], device=src.device)
        y = self.core(s, t, tgt_mask=mask, tgt_is_causal=True)
        return torch.nn.functional.linear(y, self.embed.weight)


def measure(model: nn.Module, cfg, device: torch.device, tokens: int, steps: int, bf16: bool) -> float:  # noqa: ANN001
    """Training tokens/s (target tokens) over `steps` steps after 2 warm-up steps."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    task = ReversePermuteTask(cfg.vocab_size, cfg.seq_len, seed=1)
    batches = [task.batch(tokens, device) for _ in range(4)]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else torch.autocast("cpu", enabled=False)

    def step(i: int) -> int:
        src, tgt_in, tgt_out = batches[i % len(batches)]
        with (ctx() if bf16 else ctx):
            loss = sequence_loss(model(src, tgt_in), tgt_out, cfg.label_smoothing)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return tgt_out.numel()

    model.train()
    for i in range(2):
        step(i)
    sync()
    start, done = time.perf_counter(), 0
    for i in range(steps):
        done += step(i)
    sync()
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="transformer-base,transformer-big")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--tokens", type=int, default=None, help="target tokens per step")
    p.add_argument("--seq-len", type=int, default=None)
    args = p.parse_args(argv)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    bf16 = device.type == "cuda"
    steps = args.steps or (20 if bf16 else 3)
    tokens = args.tokens or (25000 if bf16 else 1024)
    seq_len = args.seq_len or (128 if bf16 else 64)
    peak = peak_flops(device)
    name = torch.cuda.get_device_name(device) if bf16 else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; precision: {'bf16 autocast' if bf16 else 'fp32'}; {tokens} target tokens/step, "
          f"seq {seq_len}, {steps} timed steps; torch {torch.__version__}")
    print(f"{'model':<18} {'ours tok/s':>12} {'nn.Transformer':>15} {'ratio':>7} {'ours TFLOP/s':>13} {'MFU':>6}")
    for model_name in args.models.split(","):
        cfg = get_config(model_name, seq_len=seq_len)
        torch.manual_seed(0)
        ours = measure(Transformer(cfg).to(device), cfg, device, tokens, steps, bf16)
        torch.manual_seed(0)
        base = measure(TorchBaseline(cfg).to(device), cfg, device, tokens, steps, bf16)
        flops = ours * flops_per_token(cfg, seq_len)
        mfu = f"{flops / peak:.1%}" if peak else "n/a"
        print(f"{model_name:<18} {ours:>12,.0f} {base:>15,.0f} {ours / base:>6.2f}x {flops / 1e12:>13.3f} {mfu:>6}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
