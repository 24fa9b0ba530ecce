"""A synthetic, learnable sequence-to-sequence task generated on the fly (no downloads).

The target is the source reversed and passed through a fixed token permutation: a model
must learn both attention (where to look) and the embedding map (what to write), so the
loss falls steadily from ln(vocab) and a broken node shows as a loss that does not.
Each data-parallel rank draws different batches from the same task.
"""

from __future__ import annotations

import torch

BOS = 1  # token 0 is reserved for padding in real corpora; the synthetic task never pads


class ReversePermuteTask:
    def __init__(self, vocab_size: int, seq_len: int, seed: int = 0) -> None:
        self.vocab_size, self.seq_len = vocab_size, seq_len
        shared = torch.Generator().manual_seed(1234)  # the same task on every rank and run
        self.permutation = torch.randperm(vocab_size - 2, generator=shared) + 2
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, tokens: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batches by token count, as in the paper: `tokens` source tokens (and as many target ones)."""
        rows = max(1, tokens // self.seq_len)
        src = torch.randint(2, self.vocab_size, (rows, self.seq_len), generator=self.generator)
        tgt = self.permutation[src.flip(1) - 2]
        tgt_in = torch.cat([torch.full((rows, 1), BOS), tgt[:, :-1]], dim=1)
        return (src.to(device, non_blocking=True), tgt_in.to(device, non_blocking=True),
                tgt.to(device, non_blocking=True))
