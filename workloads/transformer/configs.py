"""Model sizes. base and big are the paper's (Table 3); tiny and small exist so CPUs can run them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 37000  # the paper's shared source/target BPE vocabulary (WMT14 EN-DE)
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    dropout: float = 0.1
    label_smoothing: float = 0.1
    warmup_steps: int = 4000
    max_len: int = 1024  # positions precomputed for the sinusoidal encoding
    # Burn-in shape: tokens per step and sequence length for the synthetic task.
    seq_len: int = 128
    tokens_per_step: int = 25000  # ~25k source tokens per batch, as in the paper (per GPU here)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


CONFIGS: dict[str, TransformerConfig] = {
    "transformer-base": TransformerConfig(),
    "transformer-big": TransformerConfig(d_model=1024, n_heads=16, d_ff=4096, dropout=0.3),
    "transformer-small": TransformerConfig(
        vocab_size=8000, d_model=256, n_heads=4, d_ff=1024, n_encoder_layers=3, n_decoder_layers=3,
        seq_len=64, tokens_per_step=4096, warmup_steps=400,
    ),
    "transformer-tiny": TransformerConfig(
        vocab_size=512, d_model=64, n_heads=4, d_ff=256, n_encoder_layers=2, n_decoder_layers=2,
        seq_len=16, tokens_per_step=1024, warmup_steps=50, dropout=0.0,
    ),
}

# Parameter counts reported in the paper (Table 3), for the 3% check.
PAPER_PARAMS = {"transformer-base": 65_000_000, "transformer-big": 213_000_000}


def get_config(name: str, **overrides: object) -> TransformerConfig:
    try:
        config = CONFIGS[name]
    except KeyError:
        raise SystemExit(f"unknown model {name!r}; choose one of: {', '.join(CONFIGS)}") from None
    return replace(config, **overrides) if overrides else config
