"""A per-expert linear layer over rows already grouped by expert, with a hand-written backward.

`grouped_linear(x_SD, weight_EDF, bias_EF, counts_E)` computes, for each expert e, the rows
of its contiguous slice times weight_EDF[e] plus bias_EF[e]. Writing the backward by hand lets
every expert's weight gradient land directly in its slot of one (E, D, F) tensor; through
autograd, E slices of a stacked weight cost either E zero-filled (E, D, F) gradients (indexing)
or one extra copy of all of them (unbind + stack). See benchmarks/moe_layer.py.

Shape legend: S rows (frames × top-k, grouped by expert), D input dim, F output dim, E experts.
"""

from __future__ import annotations

from typing import Any

import torch


class _GroupedLinear(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x_SD: torch.Tensor,
        weight_EDF: torch.Tensor,
        bias_EF: torch.Tensor,
        counts_E: list[int],
    ) -> torch.Tensor:
        ctx.save_for_backward(x_SD, weight_EDF)
        ctx.counts_E = counts_E
        out_SF = x_SD.new_empty(x_SD.shape[0], weight_EDF.shape[2])
        for expert, (start, end) in enumerate(_slices(counts_E)):
            if end > start:
                torch.addmm(
                    bias_EF[expert], x_SD[start:end], weight_EDF[expert], out=out_SF[start:end]
                )
        return out_SF

    @staticmethod
    def backward(ctx: Any, grad_SF: torch.Tensor) -> tuple[Any, ...]:
        x_SD, weight_EDF = ctx.saved_tensors
        grad_SF = grad_SF.contiguous()
        need_x, need_weight, need_bias, _ = ctx.needs_input_grad
        grad_x = x_SD.new_empty(x_SD.shape) if need_x else None
        grad_weight = torch.empty_like(weight_EDF) if need_weight else None
        grad_bias = (
            weight_EDF.new_zeros(weight_EDF.shape[0], weight_EDF.shape[2]) if need_bias else None
        )
        for expert, (start, end) in enumerate(_slices(ctx.counts_E)):
            if end == start:  # this expert saw no rows: a zero gradient, but a gradient
                if grad_weight is not None:
                    grad_weight[expert].zero_()
                if grad_bias is not None:
                    grad_bias[expert].zero_()
                continue
            grad_slice = grad_SF[start:end]
            if grad_x is not None:
                torch.mm(grad_slice, weight_EDF[expert].t(), out=grad_x[start:end])
            if grad_weight is not None:
                torch.mm(x_SD[start:end].t(), grad_slice, out=grad_weight[expert])
            if grad_bias is not None:
                torch.sum(grad_slice, dim=0, out=grad_bias[expert])
        return grad_x, grad_weight, grad_bias, None


def _slices(counts_E: list[int]) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for count in counts_E:
        bounds.append((start, start + count))
        start += count
    return bounds


def grouped_linear(
    x_SD: torch.Tensor, weight_EDF: torch.Tensor, bias_EF: torch.Tensor, counts_E: list[int]
) -> torch.Tensor:
    """Rows of x_SD, grouped by expert with counts_E rows each, through their expert's linear map.

    Under autocast the inputs are cast to the autocast dtype here (the custom kernel itself runs
    with autocast off, since `out=` matmuls cannot be autocast)."""
    device_type = x_SD.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        x_SD, weight_EDF, bias_EF = x_SD.to(dtype), weight_EDF.to(dtype), bias_EF.to(dtype)
    with torch.autocast(device_type=device_type, enabled=False):
        return _GroupedLinear.apply(x_SD.contiguous(), weight_EDF, bias_EF, counts_E)
