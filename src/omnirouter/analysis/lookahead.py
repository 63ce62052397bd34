"""What an expert prefetcher can know one MoE layer early: the next MoE layer's router applied
to the hidden state leaving the current MoE layer's block.

At that point the next block's attention has not run yet, so this is a prediction (made in
time to overlap the expert's transfer with that attention), not the next layer's choice. For
Omni-router the "next layer's router" is the one shared router; for Switch it is the next
layer's own. Model code stays untouched: forward hooks keep each MoE block's output and a hook
on the model adds the predictions to its `ModelOutput` (`RoutingInfo.lookahead_N`).

Shape legend: B batch, T steps, D model dim, E experts, M = B·T rows, N valid rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterator

import torch

from omnirouter.model.ctc_model import CtcModel, ModelOutput
from omnirouter.model.moe import MoEFeedForward


@contextlib.contextmanager
def lookahead_routing(model: CtcModel) -> Iterator[None]:
    """While active, every MoE layer but the last reports `lookahead_N` in the model's output."""
    moe_layers = [index for index, block in enumerate(model.blocks) if block.is_moe]
    block_outputs: dict[int, torch.Tensor] = {}

    def keep_output(layer: int) -> Callable[[torch.nn.Module, object, tuple], None]:
        def hook(module: torch.nn.Module, args: object, output: tuple) -> None:
            block_outputs[layer] = output[0]

        return hook

    def add_lookahead(module: torch.nn.Module, args: object, output: ModelOutput) -> ModelOutput:
        routing = list(output.routing)
        for position, (layer, next_layer) in enumerate(itertools.pairwise(moe_layers)):
            next_block = model.blocks[next_layer]
            assert isinstance(next_block.feed_forward, MoEFeedForward)
            x_BTD = next_block.ffn_norm(block_outputs[layer])
            logits_EM = next_block.feed_forward.router(x_BTD.reshape(-1, x_BTD.shape[-1]))
            valid_rows_N = routing[position].valid_BT.reshape(-1).nonzero().squeeze(1)
            lookahead_N = logits_EM.index_select(1, valid_rows_N).argmax(dim=0)
            routing[position] = dataclasses.replace(routing[position], lookahead_N=lookahead_N)
        block_outputs.clear()
        return dataclasses.replace(output, routing=tuple(routing))

    handles = [
        model.blocks[layer].register_forward_hook(keep_output(layer)) for layer in moe_layers
    ]
    handles.append(model.register_forward_hook(add_lookahead))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
