"""The tiny model configuration the tests share: width 32, 4 heads, FFN 64, 4 experts."""

from omnirouter.model import Family, ModelConfig


def tiny_config(family: str = "omni", **changes) -> ModelConfig:
    """A ~50k-parameter model of `family`; `changes` override any ModelConfig field."""
    settings = {
        "model_dim": 32,
        "num_heads": 4,
        "num_layers": 3,
        "ffn_dim": 64,
        "num_experts": 4,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        **changes,
    }
    return ModelConfig(family=Family(family), **settings)
