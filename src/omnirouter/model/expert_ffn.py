"""Every expert's FFN over its own frames, gated and put back in place, with a hand-written backward.

`sorted_expert_ffn` takes the frames as rows of x_MD and a slot plan (the row each slot reads,
slots grouped by expert, counts_E slots per expert) and returns out_MD with

    out[row(s)] (+)= gate(s) · (dropout(act(x[row(s)] W1[e] + b1[e])) W2[e] + b2[e])

for every slot s of expert e (paper eq. 2); rows no slot reads stay zero.
`reference_expert_ffn` says the same in a few lines of plain torch ops (dropout left out): read
it first. The tests hold the kernel to it, forward and every gradient.

Why one autograd function rather than a chain of autograd ops (each measured on CPU, see
benchmarks/moe_layer.py):
- the F-wide work runs one expert at a time, so the activation, dropout, ReLU mask and bias
  gradient touch an (n, F) slice the neighbouring matmul has just written, instead of sweeping
  the whole (S, F) tensor through memory once per op (applying ReLU to the whole tensor after
  the first matmuls measured slower);
- each expert's weight gradient is written straight into its slot of the stacked (E, D, F)
  gradient (autograd over `w[e]` costs a zero-filled (E, D, F) tensor per expert);
- the D-wide gather, gate product and put-back are one op each over all slots (top-1 puts
  back by a gather through the inverse row map, see `_RowPut`);
- an expert without frames still gets an exact zero gradient, so every expert takes part in
  every step (DDP needs no find_unused_parameters).

Dropout zeroes hidden units; its 1/(1-p) rescaling rides on the alpha of the matmuls that
read the hidden units (free in a GEMM), so it costs no pass of its own. With ReLU the backward
needs only the hidden units after dropout (a unit passes gradient iff it is positive there);
with GELU the pre-activations and the dropout mask are kept too.

Shape legend: M rows of x, S slots (valid frames × top-k, grouped by expert), n slots of one
expert, D model dim, F FFN dim, E experts. Per-expert tuples carry no shape suffix:
`<name>_blocks[e]` is expert e's (n, ·) block of a slot-ordered tensor, `<name>_of[e]` expert
e's slice of a stacked weight.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from omnirouter.model.config import Activation


def reference_expert_ffn(
    x_MD: torch.Tensor,
    gate_S: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    row_of_slot_S: torch.Tensor,
    counts_E: list[int],
    activation: Activation,
) -> torch.Tensor:
    """What `sorted_expert_ffn` computes without dropout, in plain torch ops and autograd: each
    slot takes a copy of its expert's weights (S·D·F numbers), fine for a test, too slow and
    too big to train with."""
    w1_EDF, b1_EF, w2_EFD, b2_ED = weights
    expert_S = torch.arange(len(counts_E)).repeat_interleave(torch.tensor(counts_E))
    expert_S = expert_S.to(x_MD.device)
    act = F.gelu if activation is Activation.gelu else F.relu
    x_SD = x_MD[row_of_slot_S]
    hidden_SF = act(torch.einsum("sd,sdf->sf", x_SD, w1_EDF[expert_S]) + b1_EF[expert_S])
    out_SD = torch.einsum("sf,sfd->sd", hidden_SF, w2_EFD[expert_S]) + b2_ED[expert_S]
    return torch.zeros_like(x_MD).index_add(0, row_of_slot_S, gate_S.unsqueeze(1) * out_SD)


class _SortedExpertFFN(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x_MD: torch.Tensor,
        gate_S: torch.Tensor,
        w1_EDF: torch.Tensor,
        b1_EF: torch.Tensor,
        w2_EFD: torch.Tensor,
        b2_ED: torch.Tensor,
        row_of_slot_S: torch.Tensor,
        counts_E: list[int],
        activation: Activation,
        dropout: float,
        accumulate: bool,
    ) -> torch.Tensor:
        num_slots, ffn_dim = row_of_slot_S.shape[0], w1_EDF.shape[2]
        gelu = activation is Activation.gelu
        x_SD = x_MD.index_select(0, row_of_slot_S)
        hidden_SF = x_MD.new_empty(num_slots, ffn_dim)  # act(...) × keep, not yet rescaled
        scale = 1 / (1 - dropout)
        pre_activation_SF = x_MD.new_empty(num_slots, ffn_dim) if gelu else None
        keep_SF = None  # GELU's dropout mask; with ReLU it can be read off hidden_SF
        if gelu and dropout > 0:
            keep_SF = torch.empty(num_slots, ffn_dim, dtype=torch.bool, device=x_MD.device)
        expert_out_SD = x_MD.new_empty(num_slots, x_MD.shape[1])  # before the gate
        x_blocks, hidden_blocks, out_blocks = (
            _split(t, counts_E) for t in (x_SD, hidden_SF, expert_out_SD)
        )
        pre_blocks, keep_blocks = _split(pre_activation_SF, counts_E), _split(keep_SF, counts_E)
        w1_of, b1_of, w2_of, b2_of = (weight.unbind(0) for weight in (w1_EDF, b1_EF, w2_EFD, b2_ED))
        for expert in _nonempty(counts_E):
            hidden = hidden_blocks[expert]
            if pre_activation_SF is None:
                torch.addmm(b1_of[expert], x_blocks[expert], w1_of[expert], out=hidden).relu_()
            else:
                torch.addmm(b1_of[expert], x_blocks[expert], w1_of[expert], out=pre_blocks[expert])
                hidden.copy_(F.gelu(pre_blocks[expert]))
            if dropout > 0:
                keep = torch.empty_like(hidden).bernoulli_(1 - dropout)
                if keep_SF is not None:
                    keep_blocks[expert].copy_(keep != 0)
                hidden.mul_(keep)
            torch.addmm(b2_of[expert], hidden, w2_of[expert], alpha=scale, out=out_blocks[expert])
        put = _RowPut(row_of_slot_S, x_MD.shape[0], accumulate)
        gated_values = put.new_values(x_MD.shape[1], like=x_MD)  # S rows, or S + 1
        torch.mul(expert_out_SD, gate_S.unsqueeze(1), out=gated_values[:num_slots])
        out_MD = put(gated_values)
        # Kept only for the gradients that need them: x_SD for W1's, expert_out_SD for the gate's.
        need_gate, need_w1 = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        ctx.save_for_backward(
            x_SD if need_w1 else None,
            gate_S,
            w1_EDF,
            w2_EFD,
            row_of_slot_S,
            hidden_SF,
            expert_out_SD if need_gate else None,
            pre_activation_SF,
            keep_SF,
        )
        ctx.put, ctx.counts_E, ctx.scale = put, counts_E, scale
        return out_MD

    @staticmethod
    @once_differentiable  # the `out=` matmuls build no graph: no double backward
    def backward(ctx: Any, grad_out_MD: torch.Tensor) -> tuple[Any, ...]:
        (
            x_SD,
            gate_S,
            w1_EDF,
            w2_EFD,
            row_of_slot_S,
            hidden_SF,
            expert_out_SD,
            pre_activation_SF,
            keep_SF,
        ) = ctx.saved_tensors
        need_x, need_gate, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad[:6]
        num_experts, ffn_dim = w1_EDF.shape[0], w1_EDF.shape[2]
        grad_SD = grad_out_MD.index_select(0, row_of_slot_S)  # of the gated expert outputs
        grad_gate_S = torch.linalg.vecdot(grad_SD, expert_out_SD) if need_gate else None
        grad_SD.mul_(gate_S.unsqueeze(1))  # now of the expert outputs themselves
        grad_x_values = ctx.put.new_values(grad_SD.shape[1], like=grad_SD) if need_x else None
        grad_w1 = torch.empty_like(w1_EDF) if need_w1 else None
        grad_b1 = w1_EDF.new_empty(num_experts, ffn_dim) if need_b1 else None
        grad_w2 = torch.empty_like(w2_EFD) if need_w2 else None
        grad_b2 = w2_EFD.new_empty(num_experts, w2_EFD.shape[2]) if need_b2 else None
        counts_E = ctx.counts_E
        for expert, count in enumerate(counts_E):
            if count == 0:  # an expert without frames: an exact zero gradient, but a gradient
                for grad in (grad_w1, grad_b1, grad_w2, grad_b2):
                    if grad is not None:
                        grad[expert].zero_()
        hidden_blocks, grad_blocks, x_blocks = (
            _split(t, counts_E) for t in (hidden_SF, grad_SD, x_SD)
        )
        pre_blocks, keep_blocks = _split(pre_activation_SF, counts_E), _split(keep_SF, counts_E)
        grad_x_blocks = _split(grad_x_values, counts_E)
        w1_transposed_of, w2_transposed_of = (
            w1_EDF.transpose(1, 2).unbind(0),
            w2_EFD.transpose(1, 2).unbind(0),
        )
        # One (n, F) buffer for every expert in turn: fresh ones would each cost page faults.
        grad_hidden_buffer = grad_SD.new_empty(max([0, *counts_E]) * ffn_dim)
        for expert in _nonempty(counts_E):
            hidden, grad = hidden_blocks[expert], grad_blocks[expert]
            if grad_w2 is not None:
                _matmul(hidden.t(), grad, grad_w2[expert], alpha=ctx.scale)
            if grad_b2 is not None:
                torch.sum(grad, dim=0, out=grad_b2[expert])
            if not (need_x or need_w1 or need_b1):
                continue
            grad_hidden = grad_hidden_buffer[: hidden.numel()].view(hidden.shape)
            _matmul(grad, w2_transposed_of[expert], grad_hidden, alpha=ctx.scale)
            if pre_activation_SF is None:
                # ReLU after dropout: positive exactly where the unit was kept and active.
                # (threshold_backward is ReLU's own vectorised backward; masked_fill_ with a
                # boolean mask measured several times slower on CPU.)
                torch.ops.aten.threshold_backward.grad_input(
                    grad_hidden, hidden, 0, grad_input=grad_hidden
                )
            else:
                if keep_SF is not None:
                    grad_hidden.mul_(keep_blocks[expert])
                grad_hidden = torch.ops.aten.gelu_backward(grad_hidden, pre_blocks[expert])
            if grad_w1 is not None:
                torch.mm(x_blocks[expert].t(), grad_hidden, out=grad_w1[expert])
            if grad_b1 is not None:
                torch.sum(grad_hidden, dim=0, out=grad_b1[expert])
            if grad_x_values is not None:
                torch.mm(grad_hidden, w1_transposed_of[expert], out=grad_x_blocks[expert])
        grad_x_MD = ctx.put(grad_x_values) if grad_x_values is not None else None
        return (grad_x_MD, grad_gate_S, grad_w1, grad_b1, grad_w2, grad_b2) + (None,) * 5


def _matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, alpha: float) -> None:
    """out = alpha · a @ b (with beta = 0 the old contents of out are never read)."""
    if alpha == 1:
        torch.mm(a, b, out=out)
    else:
        torch.addmm(out, a, b, beta=0, alpha=alpha, out=out)


class _RowPut:
    """Puts per-slot values (S, D) back at their rows of an (M, D) output; rows no slot reads
    are zero.

    Each row read by at most one slot (top-1): a gather by the inverse map, row m taking slot
    `source_of_row_M[m]`, and rows without a slot a zero row kept after the S slots. (Measured
    on CPU: this gather takes half the time of an `index_copy_` scatter into a fresh buffer.)
    A row read by several slots (top-k > 1): `index_add_` into zeros."""

    def __init__(self, row_of_slot_S: torch.Tensor, num_rows: int, accumulate: bool) -> None:
        self.row_of_slot_S, self.num_rows = row_of_slot_S, num_rows
        self.source_of_row_M = None
        if not accumulate:
            num_slots = row_of_slot_S.shape[0]
            self.source_of_row_M = row_of_slot_S.new_full((num_rows,), num_slots).index_copy_(
                0, row_of_slot_S, torch.arange(num_slots, device=row_of_slot_S.device)
            )

    def new_values(self, width: int, like: torch.Tensor) -> torch.Tensor:
        """A buffer whose first S rows are for the values (unset); for a gather it has one more
        row, zero."""
        num_slots = self.row_of_slot_S.shape[0]
        if self.source_of_row_M is None:
            return like.new_empty(num_slots, width)
        buffer = like.new_empty(num_slots + 1, width)
        buffer[num_slots].zero_()
        return buffer

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """(M, D) from a `new_values` buffer filled in."""
        if self.source_of_row_M is None:
            out_MD = values.new_zeros(self.num_rows, values.shape[1])
            return out_MD.index_add_(0, self.row_of_slot_S, values)
        return values.index_select(0, self.source_of_row_M)


def _nonempty(counts_E: list[int]) -> list[int]:
    return [expert for expert, count in enumerate(counts_E) if count]


def _split(tensor_SX: torch.Tensor | None, counts_E: list[int]) -> tuple[torch.Tensor, ...]:
    """Each expert's block of rows of a slot-ordered tensor, as views made in one call
    (indexing once per expert and tensor costs an op each, ~1% of the layer at E = 8). A buffer
    with a spare row after the slots (see `_RowPut`) is split over its first S rows; no tensor
    gives no blocks."""
    if tensor_SX is None:
        return ()
    num_slots = sum(counts_E)
    if tensor_SX.shape[0] not in (num_slots, num_slots + 1):
        raise ValueError(f"{tensor_SX.shape[0]} rows for {num_slots} slots")
    return tensor_SX[:num_slots].split(counts_E)


def sorted_expert_ffn(
    x_MD: torch.Tensor,
    gate_S: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    row_of_slot_S: torch.Tensor,
    counts_E: list[int],
    activation: Activation,
    dropout: float,
    accumulate: bool,
) -> torch.Tensor:
    """out_MD with every slot's gated expert output at its row (added up when `accumulate`,
    i.e. top-k > 1; copied when each row has at most one slot). `weights` = (W1[E,D,F], b1[E,F],
    W2[E,F,D], b2[E,D]); `dropout` is the probability actually applied (0 in eval mode).

    Under autocast the inputs are cast to the autocast dtype here; the kernel itself runs with
    autocast off, since `out=` matmuls cannot be autocast."""
    if len(counts_E) != weights[0].shape[0]:
        raise ValueError(f"counts_E has {len(counts_E)} entries for {weights[0].shape[0]} experts")
    if sum(counts_E) != row_of_slot_S.shape[0]:
        raise ValueError(f"counts_E sums to {sum(counts_E)}, not to {row_of_slot_S.shape[0]} slots")
    device_type = x_MD.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        x_MD = x_MD.to(dtype)
        weights = tuple(weight.to(dtype) for weight in weights)  # type: ignore[assignment]
    # The router's gates are fp32 whatever the experts run in (a bf16 model, autocast).
    gate_S = gate_S.to(x_MD.dtype)
    with torch.autocast(device_type=device_type, enabled=False):
        return _SortedExpertFFN.apply(
            x_MD.contiguous(),
            gate_S.contiguous(),
            *weights,
            row_of_slot_S,
            counts_E,
            activation,
            dropout,
            accumulate,
        )
