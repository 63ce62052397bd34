"""Named model sizes: the paper's (§V-B, Tables II–III) and tiny ones for CPUs and tests."""

from __future__ import annotations

import dataclasses

from omnirouter.model.config import Family, ModelConfig

PAPER_VOCAB_SIZE = 8000

# Dense trunks of the paper: D = 512/768/1024, 16 blocks, FFN 4096.
_TRUNKS = {
    "paper-84m": ModelConfig(model_dim=512, num_heads=8, num_layers=16, ffn_dim=4096),
    "paper-140m": ModelConfig(model_dim=768, num_heads=12, num_layers=16, ffn_dim=4096),
    "paper-200m": ModelConfig(model_dim=1024, num_heads=16, num_layers=16, ffn_dim=4096),
    # ~1M-parameter trunk for unit tests.
    "tiny": ModelConfig(
        model_dim=64, num_heads=4, num_layers=4, ffn_dim=256, dropout=0.0, attention_dropout=0.0
    ),
    # The built-in demo's size (configs/experiments/demo.yaml): minutes on a 2-core CPU.
    "demo": ModelConfig(model_dim=96, num_heads=4, num_layers=4, ffn_dim=384),
}


def preset(name: str, family: Family | str = Family.dense, num_experts: int = 4) -> ModelConfig:
    """A preset trunk turned into the given family, e.g. `preset("paper-84m", "omni", 8)`."""
    if name not in _TRUNKS:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(sorted(_TRUNKS))}")
    return dataclasses.replace(_TRUNKS[name], family=Family(family), num_experts=num_experts)
