"""The model's configuration: one frozen dataclass, one comment per field."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from omnirouter.config import require


class Family(str, Enum):
    dense = "dense"  # one FFN per block
    switch = "switch"  # E expert FFNs per MoE block, one router per MoE layer
    omni = "omni"  # E expert FFNs per MoE block, ONE router shared by every MoE layer

    def __str__(self) -> str:  # "omni", not "Family.omni", in tables and f-strings
        return self.value


class PositionEncoding(str, Enum):
    sinusoidal = "sinusoidal"  # absolute sin/cos positions (Vaswani et al. 2017)
    cape = "cape"  # continuous augmented positions (Likhomanenko et al. 2021)
    # Relative positions from a grouped convolution over time added to the input, as in
    # wav2vec 2.0 (Baevski et al. 2020, §2): each step sees its neighbours from the first block.
    convolution = "convolution"


class Activation(str, Enum):
    relu = "relu"
    gelu = "gelu"


class Dispatch(str, Enum):
    """How the MoE layer's frames reach their experts (see `model.moe`)."""

    auto = "auto"  # grouped_mm where it is fast (CUDA sm90+ with bf16), else loop
    loop = "loop"  # a loop over each expert's contiguous slice of the sorted frames
    grouped_mm = "grouped_mm"  # one `torch._grouped_mm` over all experts

    def __str__(self) -> str:  # "loop", not "Dispatch.loop", in messages and f-strings
        return self.value


@dataclass(frozen=True)
class ModelConfig:
    family: Family = Family.omni
    input_dim: int = 80  # log-mel bins per frame
    stack_frames: int = 4  # consecutive 10 ms frames stacked into one 40 ms step (paper §V-C)
    model_dim: int = 512  # D
    num_layers: int = 16  # Transformer blocks
    num_heads: int = 8
    ffn_dim: int = 4096  # F, of the dense FFN and of every expert
    activation: Activation = Activation.relu
    dropout: float = 0.1  # residual and FFN dropout
    attention_dropout: float = 0.1
    # The paper does not say; convolutional positions learn several times faster than sinusoidal
    # ones on the built-in corpus (docs/recipe-study.md).
    position: PositionEncoding = PositionEncoding.convolution
    cape_max_global_shift: float = 5.0  # CAPE, training only, in 40 ms steps
    cape_max_local_shift: float = 0.5  # CAPE, training only, in 40 ms steps
    cape_max_global_scale: float = 1.03  # CAPE, training only: positions scaled in [1/s, s]
    conv_position_kernel: int = 15  # convolution positions: kernel width in 40 ms steps (odd)
    # convolution positions: channel groups; the greatest common divisor with D is used
    conv_position_groups: int = 16
    num_experts: int = 4  # E; ignored by the dense family
    top_k: int = 1  # experts per frame (1 in the paper)
    renormalize_top_k: bool = False  # k > 1 only: gates divided by their sum (never at k = 1)
    moe_layers: list[int] | None = None  # 0-based blocks with an MoE FFN; None = every block
    router_group_size: int = (
        0  # MoE layers per shared router; 0 = family default (switch 1, omni all)
    )
    router_jitter: float = 0.0  # training only: router input × U(1-ε, 1+ε) (Switch Transformer)
    dispatch: Dispatch = Dispatch.auto  # how frames reach their experts
    # Intermediate CTC (Lee & Watanabe 2021): 0-based blocks after which the final LayerNorm and
    # head also predict the tokens, trained with weight `train.loss.intermediate_ctc_weight`.
    # Self-conditioned CTC (Nozaki & Komatsu 2021) adds that prediction's softmax back to the
    # block's output through one Linear(V, D). Empty (the default): the paper's architecture.
    intermediate_ctc_layers: list[int] = field(default_factory=list)
    self_conditioning: bool = False

    def __post_init__(self) -> None:
        for name in (
            "input_dim",
            "stack_frames",
            "model_dim",
            "num_layers",
            "num_heads",
            "ffn_dim",
        ):
            require(getattr(self, name) >= 1, f"model.{name}", ">= 1", getattr(self, name))
        for name in ("dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"model.{name}={getattr(self, name)} must lie in [0, 1)")
        for name in ("cape_max_global_shift", "cape_max_local_shift"):
            require(getattr(self, name) >= 0, f"model.{name}", ">= 0", getattr(self, name))
        scale = self.cape_max_global_scale
        require(scale >= 1, "model.cape_max_global_scale", ">= 1", scale)
        jitter = self.router_jitter
        require(0 <= jitter < 1, "model.router_jitter", "in [0, 1)", jitter)
        if self.model_dim % self.num_heads:
            raise ValueError(
                f"model.model_dim={self.model_dim} is not divisible by model.num_heads={self.num_heads}"
            )
        if self.family is not Family.dense:
            if self.num_experts < 1:
                raise ValueError(f"model.num_experts must be >= 1 for {self.family.value}")
            if not 1 <= self.top_k <= self.num_experts:
                raise ValueError(
                    f"model.top_k={self.top_k} must lie in [1, num_experts={self.num_experts}]"
                )
        if self.moe_layers is not None:
            bad = [layer for layer in self.moe_layers if not 0 <= layer < self.num_layers]
            if bad:
                raise ValueError(f"model.moe_layers {bad} outside [0, {self.num_layers})")
        if self.position is PositionEncoding.convolution:
            if self.conv_position_kernel < 1 or self.conv_position_kernel % 2 == 0:
                raise ValueError(
                    f"model.conv_position_kernel={self.conv_position_kernel} must be odd and >= 1"
                )
            if self.conv_position_groups < 1:
                raise ValueError("model.conv_position_groups must be >= 1")
        if self.router_group_size < 0:
            raise ValueError("model.router_group_size must be >= 0")
        bad = [i for i in self.intermediate_ctc_layers if not 0 <= i < self.num_layers - 1]
        if bad:
            raise ValueError(
                f"model.intermediate_ctc_layers {bad} outside [0, num_layers - 1 = "
                f"{self.num_layers - 1}): the last block's prediction is the model's output"
            )
        if self.self_conditioning and not self.intermediate_ctc_layers:
            raise ValueError("model.self_conditioning needs model.intermediate_ctc_layers")

    @property
    def is_moe(self) -> bool:
        return self.family is not Family.dense

    def moe_layer_indices(self) -> list[int]:
        if not self.is_moe:
            return []
        return (
            sorted(set(self.moe_layers))
            if self.moe_layers is not None
            else list(range(self.num_layers))
        )

    def router_groups(self) -> list[list[int]]:
        """The MoE layers grouped by the router they share, in depth order."""
        layers = self.moe_layer_indices()
        if not layers:
            return []
        size = self.router_group_size or (1 if self.family is Family.switch else len(layers))
        return [layers[start : start + size] for start in range(0, len(layers), size)]
