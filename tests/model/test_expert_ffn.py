"""The hand-written expert FFN (forward and backward) against its plain-autograd reference
(`reference_expert_ffn`, itself checked against nn.functional) and gradcheck."""

import pytest
import torch
import torch.nn.functional as F

from omnirouter.model.config import Activation
from omnirouter.model.expert_ffn import reference_expert_ffn, sorted_expert_ffn

NUM_ROWS, MODEL_DIM, FFN_DIM, NUM_EXPERTS = 23, 6, 10, 4


def make_inputs(top_k: int, covered_rows: int, dtype: torch.dtype = torch.float64, seed: int = 0):
    """x, gates, weights and a slot plan: `covered_rows` of the rows each sent to top_k distinct
    experts, slots sorted by expert; one expert is left without slots."""
    generator = torch.Generator().manual_seed(seed)
    x_MD = torch.randn(NUM_ROWS, MODEL_DIM, dtype=dtype, generator=generator)
    rows_N = torch.randperm(NUM_ROWS, generator=generator)[:covered_rows]
    # Experts 0..2 only: expert 3 never gets a slot.
    scores_NE = torch.rand(covered_rows, NUM_EXPERTS - 1, generator=generator)
    experts_NK = scores_NE.topk(top_k, dim=-1).indices
    gates_NK = torch.rand(covered_rows, top_k, dtype=dtype, generator=generator)
    experts_S = experts_NK.reshape(-1)
    order_S = torch.argsort(experts_S, stable=True)
    plan = {
        "row_of_slot_S": rows_N[order_S // top_k],
        "counts_E": torch.bincount(experts_S, minlength=NUM_EXPERTS).tolist(),
    }
    gate_S = gates_NK.reshape(-1)[order_S]
    weights = tuple(
        torch.randn(*shape, dtype=dtype, generator=generator) * 0.5
        for shape in (
            (NUM_EXPERTS, MODEL_DIM, FFN_DIM),
            (NUM_EXPERTS, FFN_DIM),
            (NUM_EXPERTS, FFN_DIM, MODEL_DIM),
            (NUM_EXPERTS, MODEL_DIM),
        )
    )
    return x_MD, gate_S, weights, plan


def reference(x_MD, gate_S, weights, plan, activation: Activation) -> torch.Tensor:
    return reference_expert_ffn(
        x_MD, gate_S, weights, plan["row_of_slot_S"], plan["counts_E"], activation
    )


def fused(x_MD, gate_S, weights, plan, activation: Activation, dropout: float = 0.0):
    return sorted_expert_ffn(
        x_MD,
        gate_S,
        weights,
        plan["row_of_slot_S"],
        plan["counts_E"],
        activation,
        dropout,
        accumulate=len(plan["row_of_slot_S"]) > len(set(plan["row_of_slot_S"].tolist())),
    )


@pytest.mark.parametrize("activation", [Activation.relu, Activation.gelu])
def test_the_reference_is_each_experts_ffn_scaled_by_its_gate(activation: Activation) -> None:
    """Rows 0..4 to expert 1 and rows 7..9 to expert 2, rows 5 and 6 to none: each expert's
    rows are nn.functional's two linear layers, times the gate."""
    x_MD, _, weights, _ = make_inputs(top_k=1, covered_rows=NUM_ROWS)
    w1, b1, w2, b2 = weights
    x_MD = x_MD[:10]
    gate_S = torch.linspace(0.1, 0.8, 8, dtype=x_MD.dtype)
    row_of_slot_S = torch.tensor([0, 1, 2, 3, 4, 7, 8, 9])
    out_MD = reference_expert_ffn(x_MD, gate_S, weights, row_of_slot_S, [0, 5, 3, 0], activation)

    act = F.gelu if activation is Activation.gelu else F.relu
    for expert, rows, gates in ((1, [0, 1, 2, 3, 4], gate_S[:5]), (2, [7, 8, 9], gate_S[5:])):
        hidden = act(F.linear(x_MD[rows], w1[expert].T, b1[expert]))
        expected = gates.unsqueeze(1) * F.linear(hidden, w2[expert].T, b2[expert])
        torch.testing.assert_close(out_MD[rows], expected)
    assert torch.equal(out_MD[[5, 6]], torch.zeros(2, MODEL_DIM, dtype=x_MD.dtype))


@pytest.mark.parametrize("activation", [Activation.relu, Activation.gelu])
@pytest.mark.parametrize(
    ("top_k", "covered_rows"),
    [(1, NUM_ROWS), (1, 15), (2, NUM_ROWS), (3, 11)],  # all rows / padding rows, top-k
)
def test_forward_and_every_gradient_equal_the_reference(
    activation: Activation, top_k: int, covered_rows: int
) -> None:
    x_MD, gate_S, weights, plan = make_inputs(top_k, covered_rows)
    leaves = [x_MD, gate_S, *weights]
    for leaf in leaves:
        leaf.requires_grad_(True)
    grad_out = torch.randn(NUM_ROWS, MODEL_DIM, dtype=x_MD.dtype)

    expected = reference(x_MD, gate_S, weights, plan, activation)
    expected_grads = torch.autograd.grad(expected, leaves, grad_out)
    actual = fused(x_MD, gate_S, weights, plan, activation)
    actual_grads = torch.autograd.grad(actual, leaves, grad_out)

    torch.testing.assert_close(actual, expected)
    names = ["x", "gate", "w1", "b1", "w2", "b2"]
    for name, got, want in zip(names, actual_grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, msg=lambda m, name=name: f"d{name}: {m}")
    uncovered = sorted(set(range(NUM_ROWS)) - set(plan["row_of_slot_S"].tolist()))
    assert torch.equal(actual[uncovered], torch.zeros(len(uncovered), MODEL_DIM, dtype=x_MD.dtype))
    # Expert 3 has no slots: its gradients exist and are exactly zero.
    for grad in actual_grads[2:]:
        assert torch.equal(grad[3], torch.zeros_like(grad[3]))


@pytest.mark.parametrize("activation", [Activation.relu, Activation.gelu])
def test_gradcheck_with_dropout(activation: Activation) -> None:
    """Dropout masks are drawn inside the function: reseeding before every call makes it one
    deterministic function, so finite differences check the backward, mask scaling included."""
    x_MD, gate_S, weights, plan = make_inputs(top_k=2, covered_rows=9)
    leaves = tuple(leaf.requires_grad_(True) for leaf in (x_MD, gate_S, *weights))

    def seeded(*inputs: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(1)
        return fused(inputs[0], inputs[1], inputs[2:], plan, activation, dropout=0.3)

    torch.manual_seed(1)
    assert torch.autograd.gradcheck(seeded, leaves)
    # The masks really drop units: the output differs from the dropout-free one.
    with torch.no_grad():
        assert not torch.allclose(seeded(*leaves), fused(x_MD, gate_S, weights, plan, activation))


@pytest.mark.parametrize(
    ("counts_E", "message"), [([1, 2, 3, 4], "counts_E sums to"), ([20, 3], "2 entries for 4")]
)
def test_counts_must_match_the_slots_and_the_experts(counts_E: list[int], message: str) -> None:
    x_MD, gate_S, weights, plan = make_inputs(top_k=1, covered_rows=NUM_ROWS)
    with pytest.raises(ValueError, match=message):
        sorted_expert_ffn(
            x_MD, gate_S, weights, plan["row_of_slot_S"], counts_E, Activation.relu, 0.0, False
        )


@pytest.mark.parametrize(
    "needs_grad",
    [
        ("x",),
        ("gate",),
        ("w1", "b1", "w2", "b2"),
        ("x", "w2"),
        ("gate", "b1"),
    ],
)
def test_gradcheck_when_only_some_inputs_need_gradients(needs_grad: tuple[str, ...]) -> None:
    """The backward skips work for inputs without requires_grad; the rest must stay right."""
    x_MD, gate_S, weights, plan = make_inputs(top_k=1, covered_rows=17)
    names = ["x", "gate", "w1", "b1", "w2", "b2"]
    inputs = [x_MD, gate_S, *weights]
    for name, tensor in zip(names, inputs, strict=True):
        tensor.requires_grad_(name in needs_grad)

    def seeded(*args: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(2)
        return fused(args[0], args[1], args[2:], plan, Activation.relu, dropout=0.2)

    assert torch.autograd.gradcheck(seeded, tuple(inputs))


def test_a_bf16_model_without_autocast_runs_in_bf16() -> None:
    """The router's gates are fp32; the experts' output keeps the experts' dtype."""
    x_MD, gate_S, weights, plan = make_inputs(top_k=2, covered_rows=NUM_ROWS, dtype=torch.float32)
    bf16_weights = tuple(weight.bfloat16() for weight in weights)
    out = fused(x_MD.bfloat16(), gate_S, bf16_weights, plan, Activation.relu)
    assert out.dtype == torch.bfloat16
    expected = reference(x_MD, gate_S, weights, plan, Activation.relu)
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)


def test_cpu_autocast_runs_the_experts_in_bf16_and_returns_fp32_gradients() -> None:
    x_MD, gate_S, weights, plan = make_inputs(top_k=1, covered_rows=NUM_ROWS, dtype=torch.float32)
    leaves = [x_MD, gate_S, *weights]
    for leaf in leaves:
        leaf.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fused(x_MD, gate_S, weights, plan, Activation.gelu)
    assert out.dtype == torch.bfloat16
    grads = torch.autograd.grad(out.float().sum(), leaves)
    assert all(grad.dtype == torch.float32 for grad in grads)
    expected = reference(x_MD, gate_S, weights, plan, Activation.gelu)
    expected_grads = torch.autograd.grad(expected.sum(), leaves)
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=0.1, rtol=0.05)
