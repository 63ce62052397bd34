"""The MoE layer against a naive reference, gradients, top-k and the permutation override.

Tests of one invariant hand the layer a `FixedRouter` (as torchtitan's MoE tests swap in a
fixed router) rather than editing a learned router's weights.
"""

import math

import pytest
import torch
from torch import nn

from omnirouter.model.config import Activation, Dispatch
from omnirouter.model.moe import Experts, MoEFeedForward, Router
from omnirouter.model.routing import ProposalMode, RoutingOverride, RoutingProposals

MODEL_DIM, FFN_DIM = 16, 32


class FixedRouter(nn.Module):
    """A router that ignores the frames: row m of the layer's (B·T, D) input prefers expert
    `preferred[m % len(preferred)]` by a logit `margin` over the others (all 0). Its top-1 gate
    is therefore e^margin / (e^margin + E − 1) on every frame."""

    def __init__(self, num_experts: int, preferred: list[int], margin: float = 2.0) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.preferred = preferred
        self.margin = margin
        self.router_id = 0

    def top1_gate(self) -> float:
        return math.exp(self.margin) / (math.exp(self.margin) + self.num_experts - 1)

    def forward(self, x_MD: torch.Tensor) -> torch.Tensor:
        rows_M = torch.arange(x_MD.shape[0])
        preferred_M = torch.tensor(self.preferred)[rows_M % len(self.preferred)]
        logits_EM = torch.zeros(self.num_experts, x_MD.shape[0])
        logits_EM[preferred_M, rows_M] = self.margin
        return logits_EM


def make_layer(
    num_experts: int,
    top_k: int = 1,
    renormalize: bool = False,
    seed: int = 0,
    router: nn.Module | None = None,
) -> MoEFeedForward:
    """A layer with a learned router, or with the given one (e.g. a `FixedRouter`)."""
    torch.manual_seed(seed)
    router = router if router is not None else Router(MODEL_DIM, num_experts)
    experts = Experts(num_experts, MODEL_DIM, FFN_DIM, Activation.relu, dropout=0.0)
    return MoEFeedForward(router, experts, layer=0, top_k=top_k, renormalize_top_k=renormalize)


def expert_ffn(experts: Experts, expert: int, x_ND: torch.Tensor) -> torch.Tensor:
    """One expert's FFN (ReLU, no dropout) over every frame given."""
    hidden = torch.relu(x_ND @ experts.w1_EDF[expert] + experts.b1_EF[expert])
    return hidden @ experts.w2_EFD[expert] + experts.b2_ED[expert]


def naive_moe(layer: MoEFeedForward, x_BTD: torch.Tensor, valid_BT: torch.Tensor) -> torch.Tensor:
    """Hugging Face SwitchTransformers style: a masked pass per expert over every frame."""
    probs = torch.softmax(x_BTD.float() @ layer.router.proj.weight.float().T, dim=-1)
    gates, chosen = probs.topk(layer.top_k, dim=-1)
    if layer.renormalize_top_k:
        gates = gates / gates.sum(-1, keepdim=True)
    out = torch.zeros_like(x_BTD)
    for expert in range(layer.experts.num_experts):
        weight = ((chosen == expert).float() * gates).sum(-1, keepdim=True)
        out = out + weight * expert_ffn(layer.experts, expert, x_BTD)
    return out * valid_BT.unsqueeze(-1)


@pytest.mark.parametrize(("num_experts", "top_k"), [(2, 1), (4, 1), (8, 1), (4, 2), (8, 3)])
def test_sorted_dispatch_equals_naive_masked_loop(num_experts: int, top_k: int) -> None:
    layer = make_layer(num_experts, top_k)
    x_BTD = torch.randn(3, 20, MODEL_DIM)
    valid_BT = torch.arange(20) < torch.tensor([[20], [13], [5]])
    output = layer(x_BTD, valid_BT)
    expected = naive_moe(layer, x_BTD, valid_BT)
    torch.testing.assert_close(output.out_BTD, expected, atol=1e-5, rtol=1e-5)
    assert output.routing.experts_NK.shape == (38, top_k)
    assert output.routing.probs_NE.dtype == torch.float32


def test_top_k_renormalised_gates_sum_to_one() -> None:
    layer = make_layer(4, top_k=2, renormalize=True)
    x_BTD = torch.randn(2, 10, MODEL_DIM)
    valid_BT = torch.ones(2, 10, dtype=torch.bool)
    output = layer(x_BTD, valid_BT)
    torch.testing.assert_close(output.routing.gates_NK.sum(-1), torch.ones(20))
    expected = naive_moe(layer, x_BTD, valid_BT)
    torch.testing.assert_close(output.out_BTD, expected, atol=1e-5, rtol=1e-5)


def test_top1_gate_is_the_raw_router_probability() -> None:
    router = FixedRouter(4, preferred=[0, 1, 2, 3])
    layer = make_layer(4, top_k=1, renormalize=True, router=router)  # refused at k = 1
    routing = layer(torch.randn(1, 30, MODEL_DIM), torch.ones(1, 30, dtype=torch.bool)).routing
    assert routing.experts_NK[:, 0].tolist() == [frame % 4 for frame in range(30)]
    torch.testing.assert_close(routing.gates_NK[:, 0], torch.full((30,), router.top1_gate()))


def test_padding_never_reaches_router_or_experts() -> None:
    layer = make_layer(4)
    x_BTD = torch.randn(2, 12, MODEL_DIM)
    valid_BT = torch.arange(12) < torch.tensor([[12], [7]])
    garbage = x_BTD.clone()
    garbage[1, 7:] = 1e6
    clean = layer(x_BTD, valid_BT)
    out_garbage_BTD = layer(garbage, valid_BT).out_BTD
    torch.testing.assert_close(clean.out_BTD, out_garbage_BTD)
    assert clean.routing.probs_NE.shape[0] == 19
    assert torch.equal(out_garbage_BTD[1, 7:], torch.zeros(5, MODEL_DIM))


def test_gradients_reach_every_expert_and_the_router() -> None:
    layer = make_layer(4, seed=3)
    x_BTD = torch.randn(4, 64, MODEL_DIM, requires_grad=True)
    valid_BT = torch.ones(4, 64, dtype=torch.bool)
    output = layer(x_BTD, valid_BT)
    used = torch.bincount(output.routing.experts_NK[:, 0], minlength=4)
    assert (used > 0).all(), "seeded input should reach every expert"
    output.out_BTD.square().mean().backward()
    assert layer.router.proj.weight.grad is not None
    assert layer.router.proj.weight.grad.abs().sum() > 0
    for expert in range(4):
        assert layer.experts.w1_EDF.grad[expert].abs().sum() > 0
        assert layer.experts.w2_EFD.grad[expert].abs().sum() > 0
    assert x_BTD.grad is not None


def test_an_unused_expert_still_gets_a_zero_gradient() -> None:
    layer = make_layer(4, router=FixedRouter(4, preferred=[0, 1, 2]))  # expert 3 unreachable
    output = layer(torch.randn(1, 8, MODEL_DIM), torch.ones(1, 8, dtype=torch.bool))
    output.out_BTD.sum().backward()
    assert (output.routing.experts_NK != 3).all()
    for weight in layer.experts.parameters():
        assert weight.grad is not None
        assert torch.equal(weight.grad[3], torch.zeros_like(weight.grad[3]))
        assert all(weight.grad[expert].abs().sum() > 0 for expert in range(3))


def test_permutation_override_p0_identity_and_p1_uniform() -> None:
    experts_NK = torch.randint(4, (20000, 1))
    same = RoutingOverride(0.0).apply(experts_NK, 4)
    assert torch.equal(same, experts_NK)
    shuffled = RoutingOverride(1.0, torch.Generator().manual_seed(0)).apply(
        torch.zeros(20000, 1, dtype=torch.long), 4
    )
    counts = torch.bincount(shuffled[:, 0], minlength=4).float()
    # All-zero input: a uniform redraw leaves about a quarter at 0 and spreads the rest evenly.
    assert ((counts / 20000 - 0.25).abs() < 0.02).all()
    with pytest.raises(ValueError):
        RoutingOverride(1.5)


def test_permutation_override_changes_the_expert_not_the_gate() -> None:
    router = FixedRouter(4, preferred=[1])  # every frame's own choice is expert 1
    layer = make_layer(4, router=router)
    x_BTD = torch.randn(2, 50, MODEL_DIM)
    valid_BT = torch.ones(2, 50, dtype=torch.bool)
    plain = layer(x_BTD, valid_BT)
    assert torch.equal(layer(x_BTD, valid_BT, RoutingOverride(0.0)).out_BTD, plain.out_BTD)

    output = layer(x_BTD, valid_BT, RoutingOverride(1.0, torch.Generator().manual_seed(0)))
    experts_N = output.routing.experts_NK[:, 0]
    assert set(experts_N.tolist()) == {0, 1, 2, 3}  # 100 uniform draws reach every expert
    assert (output.routing.top1_N() == 1).all()  # the router's own choice is still reported
    gate = router.top1_gate()
    torch.testing.assert_close(output.routing.gates_NK[:, 0], torch.full((100,), gate))
    x_ND = x_BTD.reshape(-1, MODEL_DIM)
    expected_ND = torch.stack(
        [gate * expert_ffn(layer.experts, int(expert), x_D) for expert, x_D in zip(experts_N, x_ND)]
    )
    torch.testing.assert_close(output.out_BTD.reshape(-1, MODEL_DIM), expected_ND)


def test_ranked_proposals_keep_proposal_zero_clean_and_move_the_others() -> None:
    router = FixedRouter(4, preferred=[3, 0])  # the router's top-1 alternates by frame
    layer = make_layer(4, router=router)
    x_BTD = torch.randn(1, 6, MODEL_DIM).repeat(3, 1, 1)  # three proposals of one utterance
    valid_BT = torch.ones(3, 6, dtype=torch.bool)
    routing = layer(x_BTD, valid_BT, RoutingProposals(3, mode=ProposalMode.ranked)).routing
    experts_KT = routing.experts_NK[:, 0].view(3, 6)
    assert experts_KT[0].tolist() == [3, 0, 3, 0, 3, 0]  # proposal 0: the router's own choice
    assert (experts_KT[1:] != experts_KT[0]).all()  # the others: a lower-ranked expert
    torch.testing.assert_close(routing.gates_NK[:, 0], torch.full((18,), router.top1_gate()))


def _twin_layers(
    num_experts: int, top_k: int, router: nn.Module | None = None
) -> tuple[MoEFeedForward, MoEFeedForward]:
    """The same weights behind the loop and the grouped-GEMM dispatch."""
    loop = make_layer(num_experts, top_k, router=router)
    grouped = make_layer(num_experts, top_k, router=router)
    grouped.load_state_dict(loop.state_dict())  # a learned router's weight included
    loop.dispatch, grouped.dispatch = Dispatch.loop, Dispatch.grouped_mm
    return loop, grouped


def _forward_backward(layer: MoEFeedForward, x_BTD: torch.Tensor, valid_BT: torch.Tensor):
    x_BTD = x_BTD.clone().requires_grad_(True)
    out_BTD = layer(x_BTD, valid_BT).out_BTD
    weights_BTD = torch.linspace(-1, 1, out_BTD.numel()).view_as(out_BTD)  # a contiguous grad
    (out_BTD.float() * weights_BTD).sum().backward()
    grads = {"x": x_BTD.grad}
    grads |= {f"router.{name}": p.grad for name, p in layer.router.named_parameters()}
    grads |= {name: p.grad for name, p in layer.experts.named_parameters()}
    return out_BTD, grads


@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch without _grouped_mm")
@pytest.mark.parametrize(("num_experts", "top_k"), [(4, 1), (8, 1), (4, 2)])
def test_grouped_mm_dispatch_equals_the_loop_in_fp32(num_experts: int, top_k: int) -> None:
    loop, grouped = _twin_layers(num_experts, top_k)
    torch.manual_seed(1)
    x_BTD = torch.randn(3, 20, MODEL_DIM)
    valid_BT = torch.arange(20) < torch.tensor([[20], [13], [5]])  # padded batch
    expected, expected_grads = _forward_backward(loop, x_BTD, valid_BT)
    actual, actual_grads = _forward_backward(grouped, x_BTD, valid_BT)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(actual_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch without _grouped_mm")
def test_grouped_mm_dispatch_with_experts_that_get_no_frames() -> None:
    # Every frame to expert 2: experts 0, 1 and 3 get none.
    loop, grouped = _twin_layers(4, 1, router=FixedRouter(4, preferred=[2]))
    x_BTD = torch.rand(2, 9, MODEL_DIM) + 0.1
    valid_BT = torch.ones(2, 9, dtype=torch.bool)
    expected, expected_grads = _forward_backward(loop, x_BTD, valid_BT)
    actual, actual_grads = _forward_backward(grouped, x_BTD, valid_BT)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    assert actual_grads["w1_EDF"][[0, 1, 3]].abs().sum() == 0
    for name, grad in expected_grads.items():
        torch.testing.assert_close(actual_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch without _grouped_mm")
@pytest.mark.parametrize("top_k", [1, 2])
def test_grouped_mm_dispatch_under_bf16_autocast_on_cpu(top_k: int) -> None:
    loop, grouped = _twin_layers(4, top_k)
    torch.manual_seed(2)
    x_BTD = torch.randn(2, 16, MODEL_DIM)
    valid_BT = torch.arange(16) < torch.tensor([[16], [11]])
    expected, expected_grads = _forward_backward(loop, x_BTD, valid_BT)  # fp32 reference
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actual, actual_grads = _forward_backward(grouped, x_BTD, valid_BT)
    assert actual.dtype == torch.bfloat16

    # bf16 keeps 8 bits of mantissa: outputs and gradients within 4% of fp32 in norm (single
    # elements can be off by more). At top-2 the input's gradient is off by 2.7%, as much as the
    # loop dispatch's under the same autocast (2.8%): bf16's, not the dispatch's.
    def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.detach().float() - b.detach()).norm() / b.detach().norm())

    assert relative_error(actual, expected) < 4e-2
    for name, grad in expected_grads.items():
        assert relative_error(actual_grads[name], grad) < 4e-2, name


def test_grouped_mm_dispatch_refuses_shapes_it_cannot_run() -> None:
    torch.manual_seed(0)
    layer = MoEFeedForward(
        Router(6, 2), Experts(2, 6, 10, Activation.relu, 0.0), layer=0, dispatch="grouped_mm"
    )
    with pytest.raises(RuntimeError, match="multiples of 4"):
        layer(torch.randn(1, 5, 6), torch.ones(1, 5, dtype=torch.bool))
