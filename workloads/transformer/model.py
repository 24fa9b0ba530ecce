"""An encoder-decoder Transformer as the paper describes it, kept small enough to read at once.

Faithful points: sinusoidal positions; one embedding matrix shared by source, target and the
pre-softmax projection, with embeddings scaled by sqrt(d_model); post-layer-norm residual blocks
(LayerNorm(x + Dropout(sublayer(x)))); dropout on embeddings+positions. Attention goes through
`F.scaled_dot_product_attention` so that fused (flash / memory-efficient) kernels run on GPUs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workloads.transformer.configs import TransformerConfig


def sinusoidal_positions(max_len: int, d_model: int) -> torch.Tensor:
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)
    return table


class MultiHeadAttention(nn.Module):
    """Attention with fused input projections: one matmul for Q, K and V (or K and V from memory).

    The same parameters as the paper's separate W^Q, W^K, W^V, stacked, so the GPU runs one
    large GEMM instead of three small ones.
    """

    def __init__(self, cfg: TransformerConfig, cross: bool = False) -> None:
        super().__init__()
        self.n_heads, self.cross = cfg.n_heads, cross
        if cross:
            self.q = nn.Linear(cfg.d_model, cfg.d_model)
            self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        else:
            self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        return x.view(batch, length, self.n_heads, d_model // self.n_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        if self.cross:
            assert memory is not None
            q, (k, v) = self.q(x), self.kv(memory).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v),
            dropout_p=self.dropout if self.training else 0.0, is_causal=causal,
        )
        batch, _, length, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(batch, length, -1))


class FeedForward(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.drop(F.relu(self.up(x))))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.attn, self.ff = MultiHeadAttention(cfg), FeedForward(cfg)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.ff(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.self_attn, self.cross_attn = MultiHeadAttention(cfg), MultiHeadAttention(cfg, cross=True)
        self.ff = FeedForward(cfg)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.self_attn(x, causal=True)))
        x = self.norm2(x + self.drop(self.cross_attn(x, memory=memory)))
        return self.norm3(x + self.drop(self.ff(x)))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.embed.weight, mean=0.0, std=cfg.d_model**-0.5)
        self.register_buffer("positions", sinusoidal_positions(cfg.max_len, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        self.scale = math.sqrt(cfg.d_model)

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.drop(self.embed(tokens) * self.scale + self.positions[: tokens.shape[1]])

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory = self._embed(src)
        for layer in self.encoder:
            memory = layer(memory)
        x = self._embed(tgt_in)
        for layer in self.decoder:
            x = layer(x, memory)
        return F.linear(x, self.embed.weight)  # pre-softmax weights shared with the embeddings



def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy with label smoothing (the paper's ε_ls = 0.1), in fp32 whatever the autocast."""
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), label_smoothing=label_smoothing
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_token(cfg: TransformerConfig, seq_len: int) -> float:
    """Training FLOPs per target token: 6 × matmul parameters, plus attention scores.

    Forward matmul FLOPs are 2 per weight per token; backward doubles that twice over
    (6N, as in Kaplan et al. and nanoGPT). Per token we count one source and one target
    token. Attention adds 2·2·L·d per layer and pass (QKᵀ and AV), times 3 for training.
    The causal mask halves decoder self-attention in principle; kernels compute it in
    full tiles, so it is counted in full, a slight overestimate shared with the baseline.
    """
    d, f = cfg.d_model, cfg.d_ff
    enc_layer = 4 * d * d + 2 * d * f
    dec_layer = 8 * d * d + 2 * d * f
    matmul_per_pair = cfg.n_encoder_layers * enc_layer + cfg.n_decoder_layers * dec_layer
    matmul_per_pair += cfg.vocab_size * d  # the output projection (target side only)
    attention_per_pair = 4 * seq_len * d * (cfg.n_encoder_layers + 2 * cfg.n_decoder_layers)
    return 6.0 * matmul_per_pair + 3.0 * attention_per_pair
