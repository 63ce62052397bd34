"""The MoE layer against a naive reference, gradients, top-k and the permutation override."""

import pytest
import torch

from omnirouter.model.config import Activation
from omnirouter.model.moe import Experts, MoEFeedForward, Router
from omnirouter.model.routing import RoutingOverride

MODEL_DIM, FFN_DIM = 16, 32


def make_layer(num_experts: int, top_k: int = 1, renormalize: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    router = Router(MODEL_DIM, num_experts)
    experts = Experts(num_experts, MODEL_DIM, FFN_DIM, Activation.relu, dropout=0.0)
    return MoEFeedForward(router, experts, layer=0, top_k=top_k, renormalize_top_k=renormalize)


def naive_moe(layer: MoEFeedForward, x_BTD: torch.Tensor, valid_BT: torch.Tensor) -> torch.Tensor:
    """Hugging Face SwitchTransformers style: a masked pass per expert over every frame."""
    probs = torch.softmax(x_BTD.float() @ layer.router.proj.weight.float().T, dim=-1)
    gates, chosen = probs.topk(layer.top_k, dim=-1)
    if layer.renormalize_top_k:
        gates = gates / gates.sum(-1, keepdim=True)
    experts = layer.experts
    out = torch.zeros_like(x_BTD)
    for expert in range(experts.num_experts):
        hidden = torch.relu(x_BTD @ experts.w1_EDF[expert] + experts.b1_EF[expert])
        expert_out = hidden @ experts.w2_EFD[expert] + experts.b2_ED[expert]
        weight = ((chosen == expert).float() * gates).sum(-1, keepdim=True)
        out = out + weight * expert_out
    return out * valid_BT.unsqueeze(-1)


@pytest.mark.parametrize(("num_experts", "top_k"), [(2, 1), (4, 1), (8, 1), (4, 2), (8, 3)])
def test_sorted_dispatch_equals_naive_masked_loop(num_experts: int, top_k: int) -> None:
    layer = make_layer(num_experts, top_k)
    x_BTD = torch.randn(3, 20, MODEL_DIM)
    valid_BT = torch.arange(20) < torch.tensor([[20], [13], [5]])
    out_BTD, routing = layer(x_BTD, valid_BT)
    torch.testing.assert_close(out_BTD, naive_moe(layer, x_BTD, valid_BT), atol=1e-5, rtol=1e-5)
    assert routing.experts_NK.shape == (38, top_k)
    assert routing.probs_NE.dtype == torch.float32


def test_top_k_renormalised_gates_sum_to_one() -> None:
    layer = make_layer(4, top_k=2, renormalize=True)
    x_BTD = torch.randn(2, 10, MODEL_DIM)
    valid_BT = torch.ones(2, 10, dtype=torch.bool)
    out_BTD, routing = layer(x_BTD, valid_BT)
    torch.testing.assert_close(routing.gates_NK.sum(-1), torch.ones(20))
    torch.testing.assert_close(out_BTD, naive_moe(layer, x_BTD, valid_BT), atol=1e-5, rtol=1e-5)


def test_top1_gate_is_the_raw_router_probability() -> None:
    layer = make_layer(4, top_k=1, renormalize=True)  # renormalising is refused at k = 1
    x_BTD = torch.randn(1, 30, MODEL_DIM)
    _, routing = layer(x_BTD, torch.ones(1, 30, dtype=torch.bool))
    torch.testing.assert_close(routing.gates_NK[:, 0], routing.probs_NE.max(-1).values)
    assert (routing.gates_NK < 1).all()


def test_padding_never_reaches_router_or_experts() -> None:
    layer = make_layer(4)
    x_BTD = torch.randn(2, 12, MODEL_DIM)
    valid_BT = torch.arange(12) < torch.tensor([[12], [7]])
    garbage = x_BTD.clone()
    garbage[1, 7:] = 1e6
    out_clean, routing_clean = layer(x_BTD, valid_BT)
    out_garbage, _routing_garbage = layer(garbage, valid_BT)
    torch.testing.assert_close(out_clean, out_garbage)
    assert routing_clean.probs_NE.shape[0] == 19
    assert torch.equal(out_garbage[1, 7:], torch.zeros(5, MODEL_DIM))


def test_gradients_reach_every_expert_and_the_router() -> None:
    layer = make_layer(4, seed=3)
    x_BTD = torch.randn(4, 64, MODEL_DIM, requires_grad=True)
    valid_BT = torch.ones(4, 64, dtype=torch.bool)
    out_BTD, routing = layer(x_BTD, valid_BT)
    used = torch.bincount(routing.experts_NK[:, 0], minlength=4)
    assert (used > 0).all(), "seeded input should reach every expert"
    out_BTD.square().mean().backward()
    assert layer.router.proj.weight.grad is not None
    assert layer.router.proj.weight.grad.abs().sum() > 0
    for expert in range(4):
        assert layer.experts.w1_EDF.grad[expert].abs().sum() > 0
        assert layer.experts.w2_EFD.grad[expert].abs().sum() > 0
    assert x_BTD.grad is not None


def test_an_unused_expert_still_gets_a_zero_gradient() -> None:
    layer = make_layer(4)
    with torch.no_grad():  # make expert 3 unreachable
        layer.router.proj.weight[3] = -1e3 * layer.router.proj.weight[3].sign()
    x_BTD = torch.randn(1, 8, MODEL_DIM).abs()
    out_BTD, routing = layer(x_BTD, torch.ones(1, 8, dtype=torch.bool))
    out_BTD.sum().backward()
    assert (routing.experts_NK != 3).all()
    grad = layer.experts.w1_EDF.grad
    assert grad is not None and torch.equal(grad[3], torch.zeros_like(grad[3]))


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


def _twin_layers(num_experts: int, top_k: int) -> tuple[MoEFeedForward, MoEFeedForward]:
    """The same weights behind the loop and the grouped-GEMM dispatch."""
    loop = make_layer(num_experts, top_k)
    grouped = make_layer(num_experts, top_k)
    grouped.load_state_dict(loop.state_dict())  # the router's weight included
    loop.dispatch, grouped.dispatch = "loop", "grouped_mm"
    return loop, grouped


def _forward_backward(layer: MoEFeedForward, x_BTD: torch.Tensor, valid_BT: torch.Tensor):
    x_BTD = x_BTD.clone().requires_grad_(True)
    out_BTD, _ = layer(x_BTD, valid_BT)
    weights_BTD = torch.linspace(-1, 1, out_BTD.numel()).view_as(out_BTD)  # a contiguous grad
    (out_BTD.float() * weights_BTD).sum().backward()
    grads = {"x": x_BTD.grad, "router": layer.router.proj.weight.grad}
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
    loop, grouped = _twin_layers(4, 1)
    with torch.no_grad():  # every frame to expert 2: experts 0, 1 and 3 get none
        for layer in (loop, grouped):
            layer.router.proj.weight.zero_()
            layer.router.proj.weight[2] = 1.0
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
