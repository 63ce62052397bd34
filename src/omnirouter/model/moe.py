"""The mixture-of-experts feed-forward layer: router, stacked experts, dropless dispatch.

A router is built outside the layer and handed in, so that an Omni-router model passes the
SAME `Router` module to every MoE layer (paper eq. 6) and a Switch model one per layer (eq. 1).
The layer's forward reads router → choice of experts (`routing.py`) → experts → combine.

Shape legend: B batch, T frames, D model dim, F FFN dim, E experts, K experts per frame,
N valid frames, S = N·K (frame, expert) slots.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from omnirouter.model.config import Activation, Dispatch
from omnirouter.model.expert_ffn import sorted_expert_ffn
from omnirouter.model.routing import RoutingInfo, RoutingIntervention, top_k_routing
from omnirouter.model.transformer import FeedForwardOutput


class Router(nn.Module):
    """`P = softmax(x W)`, W of shape D×E with no bias (paper eq. 1), always computed in fp32."""

    def __init__(self, model_dim: int, num_experts: int, router_id: int = 0) -> None:
        super().__init__()
        self.router_id = router_id
        self.proj = nn.Linear(model_dim, num_experts, bias=False)

    @property
    def num_experts(self) -> int:
        return self.proj.out_features

    def forward(self, x_ND: torch.Tensor) -> torch.Tensor:
        """Router logits, expert-major (E, N), fp32 even under autocast: small logit errors
        flip top-1 choices. Expert-major because softmax and max over a last dim of a few
        experts are slow on CPU: the router's forward + backward (logits, softmax, top-1) at
        N = 4096, D = 256, E = 8 measured 2.0 ms this way against 2.5 ms frame-major."""
        with torch.autocast(device_type=x_ND.device.type, enabled=False):
            return torch.mm(self.proj.weight.float(), x_ND.float().t())


class Experts(nn.Module):
    """E independent two-layer FFNs stored as stacked tensors W1[E,D,F], b1[E,F], W2[E,F,D], b2[E,D].

    What they compute is `expert_ffn.reference_expert_ffn`, in plain torch ops; the two
    forwards below are fast ways to the same numbers."""

    def __init__(
        self, num_experts: int, model_dim: int, ffn_dim: int, activation: Activation, dropout: float
    ) -> None:
        super().__init__()
        self.w1_EDF = nn.Parameter(torch.empty(num_experts, model_dim, ffn_dim))
        self.b1_EF = nn.Parameter(torch.empty(num_experts, ffn_dim))
        self.w2_EFD = nn.Parameter(torch.empty(num_experts, ffn_dim, model_dim))
        self.b2_ED = nn.Parameter(torch.empty(num_experts, model_dim))
        self.activation = activation
        self.dropout = dropout  # between the two matmuls, while training
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The same init as nn.Linear gives each expert: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        for weight, bias in ((self.w1_EDF, self.b1_EF), (self.w2_EFD, self.b2_ED)):
            bound = 1.0 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    @property
    def num_experts(self) -> int:
        return self.w1_EDF.shape[0]

    def forward_sorted(
        self,
        x_MD: torch.Tensor,
        gate_S: torch.Tensor,
        row_of_slot_S: torch.Tensor,
        counts_E: list[int],
        accumulate: bool,
    ) -> torch.Tensor:
        """out_MD: each slot's expert output × gate at its row of x_MD (summed over slots when
        `accumulate`); slots are grouped by expert, counts_E per expert, in expert order. One
        expert at a time over its contiguous slots, with a hand-written backward
        (`expert_ffn.py`); an expert with no slots gets a zero gradient, so every expert's
        weights take part in every step (DDP needs no find_unused_parameters)."""
        return sorted_expert_ffn(
            x_MD,
            gate_S,
            (self.w1_EDF, self.b1_EF, self.w2_EFD, self.b2_ED),
            row_of_slot_S,
            counts_E,
            self.activation,
            self.dropout if self.training else 0.0,
            accumulate,
        )

    def forward_grouped_mm(self, x_SD: torch.Tensor, counts_E: torch.Tensor) -> torch.Tensor:
        """The expert outputs of slot-ordered rows x_SD in two grouped GEMMs, in x_SD's dtype
        (`torch._grouped_mm`: fast on CUDA sm90+ in bf16; the CPU build runs it too)."""
        offsets_E = torch.cumsum(counts_E, dim=0).to(torch.int32)
        expert_of_row_S = torch.repeat_interleave(
            torch.arange(self.num_experts, device=x_SD.device), counts_E, output_size=x_SD.shape[0]
        )
        weight1 = self.w1_EDF.to(x_SD.dtype)
        hidden_SF = torch._grouped_mm(x_SD, weight1, offs=offsets_E)
        activation = F.gelu if self.activation is Activation.gelu else F.relu
        hidden_SF = activation(hidden_SF + self.b1_EF.to(x_SD.dtype)[expert_of_row_S])
        hidden_SF = F.dropout(hidden_SF, self.dropout, training=self.training)
        out_SD = torch._grouped_mm(hidden_SF, self.w2_EFD.to(x_SD.dtype), offs=offsets_E)
        return out_SD + self.b2_ED.to(x_SD.dtype)[expert_of_row_S]


def grouped_mm_supported(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether `torch._grouped_mm` exists and is a fast path here (Hopper or newer, bf16): the
    `auto` dispatch takes it only then."""
    if device.type != "cuda" or not hasattr(torch, "_grouped_mm") or dtype != torch.bfloat16:
        return False
    return torch.cuda.get_device_capability(device)[0] >= 9


def grouped_mm_runs(model_dim: int, ffn_dim: int, dtype: torch.dtype) -> str | None:
    """Why `torch._grouped_mm` cannot run these shapes (None when it can): it needs the torch
    function and rows whose length in bytes is a multiple of 16 (D and F multiples of 4 in fp32,
    8 in bf16)."""
    if not hasattr(torch, "_grouped_mm"):
        return f"torch {torch.__version__} has no torch._grouped_mm"
    row_multiple = 16 // torch.empty((), dtype=dtype).element_size()
    if model_dim % row_multiple or ffn_dim % row_multiple:
        return f"D={model_dim} and F={ffn_dim} must be multiples of {row_multiple} in {dtype}"
    return None


class MoEFeedForward(nn.Module):
    """Top-k sparse FFN: route, choose each frame's experts, dispatch the valid frames sorted
    by expert, combine by gate.

    Dropless: every frame reaches its experts whatever the load (no capacity factor).
    Only valid frames are routed; padding neither costs compute nor enters router statistics.
    """

    is_moe = True
    # Declared for type checkers: with `register_router=False` the router is a plain
    # attribute, not a registered submodule (see `__init__`).
    router: Router

    def __init__(
        self,
        router: Router,
        experts: Experts,
        layer: int,
        top_k: int = 1,
        renormalize_top_k: bool = False,
        router_jitter: float = 0.0,
        dispatch: Dispatch | str = Dispatch.auto,
        register_router: bool = True,
    ) -> None:
        super().__init__()
        if router.num_experts != experts.num_experts:
            raise ValueError(
                f"router has {router.num_experts} experts, the expert bank {experts.num_experts}"
            )
        if register_router:
            self.router = router
        else:
            # The router is registered by its owner (the model), once however many layers use
            # it; a plain reference here keeps a shared W_shared out of this layer's parameters
            # and state dict, so both hold it exactly once.
            object.__setattr__(self, "router", router)
        self.experts = experts
        self.layer = layer
        self.top_k = top_k
        self.renormalize_top_k = renormalize_top_k and top_k > 1  # never at k=1: no router gradient
        self.router_jitter = router_jitter
        self.dispatch = Dispatch(dispatch)

    def forward(
        self,
        x_BTD: torch.Tensor,
        valid_BT: torch.Tensor,
        intervention: RoutingIntervention | None = None,
    ) -> FeedForwardOutput:
        """The same call as the dense `FeedForward`: router → choice (the intervention's when
        one is given, else the plain top-k) → experts → combine."""
        # Flat row indices of the valid frames: index_select/index_copy are much cheaper than
        # boolean-mask gathers and scatters (forward and backward) on CPU.
        x_MD = x_BTD.reshape(-1, x_BTD.shape[-1])
        valid_rows_N = valid_BT.reshape(-1).nonzero().squeeze(1)
        logits_EN = self._router_logits(x_MD, valid_rows_N)
        probs_EN = logits_EN.softmax(dim=0)
        if intervention is None:
            gates_NK, experts_NK = top_k_routing(probs_EN, self.top_k)
        else:
            gates_NK, experts_NK = intervention.choose(logits_EN, probs_EN, valid_BT, self.top_k)
        if self.renormalize_top_k:
            gates_NK = gates_NK / gates_NK.sum(dim=-1, keepdim=True)
        out_MD = self._dispatch_combine(x_MD, experts_NK, gates_NK, valid_rows_N)
        routing = RoutingInfo(
            layer=self.layer,
            router_id=self.router.router_id,
            logits_NE=logits_EN.t(),
            probs_NE=probs_EN.t(),
            experts_NK=experts_NK,
            gates_NK=gates_NK,
            valid_BT=valid_BT,
        )
        return FeedForwardOutput(out_MD.view((*x_BTD.shape[:-1], out_MD.shape[-1])), routing)

    def _router_logits(self, x_MD: torch.Tensor, valid_rows_N: torch.Tensor) -> torch.Tensor:
        """logits_EN of the valid frames; while training, of an input jittered by ×U(1-ε, 1+ε)."""
        router_input_MD = x_MD
        if self.training and self.router_jitter > 0:
            noise_MD = torch.empty_like(x_MD).uniform_(
                1 - self.router_jitter, 1 + self.router_jitter
            )
            router_input_MD = x_MD * noise_MD
        # The router runs on every row (E outputs each: cheap) and only the valid rows' logits
        # are kept, which saves gathering the D-wide valid frames twice; padding rows never
        # reach the softmax, the statistics or the losses.
        logits_EM = self.router(router_input_MD)
        if valid_rows_N.shape[0] < logits_EM.shape[1]:
            return logits_EM.index_select(1, valid_rows_N)
        return logits_EM

    def _dispatch_combine(
        self,
        x_MD: torch.Tensor,
        experts_NK: torch.Tensor,
        gates_NK: torch.Tensor,
        valid_rows_N: torch.Tensor,
    ) -> torch.Tensor:
        """Expert outputs of the valid frames, scaled by their gates (paper eq. 2), at their
        rows of an output shaped like x_MD; padding rows stay exactly zero."""
        experts_S = experts_NK.reshape(-1)
        # A stable sort keeps frames of one expert in time order: the result is deterministic.
        order_S = torch.argsort(experts_S, stable=True)
        counts_E = torch.bincount(experts_S, minlength=self.experts.num_experts)
        row_of_slot_S = valid_rows_N.index_select(0, order_S // self.top_k)
        gate_S = gates_NK.reshape(-1).index_select(0, order_S)
        if not self._use_grouped_mm(x_MD):
            return self.experts.forward_sorted(
                x_MD, gate_S, row_of_slot_S, counts_E.tolist(), accumulate=self.top_k > 1
            )
        x_SD = x_MD.index_select(0, row_of_slot_S).to(self._compute_dtype(x_MD))
        out_SD = self.experts.forward_grouped_mm(x_SD, counts_E) * gate_S.unsqueeze(-1).to(
            x_SD.dtype
        )
        out_MD = out_SD.new_zeros(x_MD.shape[0], out_SD.shape[-1])
        if self.top_k == 1:
            # Slots are a permutation of the valid frames: a copy by index is all it takes.
            return out_MD.index_copy(0, row_of_slot_S, out_SD)
        return out_MD.index_add(0, row_of_slot_S, out_SD)

    @staticmethod
    def _compute_dtype(x_MD: torch.Tensor) -> torch.dtype:
        """The dtype the experts' matmuls run in: autocast's on this device, else x's."""
        device = x_MD.device.type
        if torch.is_autocast_enabled(device):
            return torch.get_autocast_dtype(device)
        return x_MD.dtype

    def _use_grouped_mm(self, x_MD: torch.Tensor) -> bool:
        """`auto`: grouped GEMMs where they are fast (CUDA sm90+, bf16), else the loop.
        `grouped_mm`: grouped GEMMs on any device whose torch runs them (the CPU included, so
        that the CUDA path's code is exercised without a GPU), or an error saying why not."""
        if self.dispatch is Dispatch.loop:
            return False
        dtype = self._compute_dtype(x_MD)
        if self.dispatch is Dispatch.auto:
            return grouped_mm_supported(x_MD.device, dtype)
        reason = grouped_mm_runs(self.experts.w1_EDF.shape[1], self.experts.w1_EDF.shape[2], dtype)
        if reason is not None:
            raise RuntimeError(f"dispatch='grouped_mm' cannot run here: {reason}")
        return True
