"""Whole-model properties: batch invariance, lengths, routing in the output, positions."""

import dataclasses

import pytest
import torch

from omnirouter.model import build_model
from omnirouter.model.config import PositionEncoding
from omnirouter.model.frontend import ConvolutionalPositions, stacked_lengths, valid_mask
from tests.models import tiny_config


def tiny_model(family: str, position: str = "sinusoidal", seed: int = 0):
    torch.manual_seed(seed)
    config = tiny_config(family, position=PositionEncoding(position), dropout=0.1)
    return build_model(config, vocab_size=12).eval()


def test_stacked_lengths_count_partial_groups() -> None:
    lengths = stacked_lengths(torch.tensor([1, 4, 5, 8, 9]), 4)
    assert lengths.tolist() == [1, 1, 2, 2, 3]


@pytest.mark.parametrize("family", ["dense", "switch", "omni"])
@pytest.mark.parametrize("position", ["sinusoidal", "cape", "convolution"])
def test_utterance_output_does_not_depend_on_batch_mates_or_padding(
    family: str, position: str
) -> None:
    model = tiny_model(family, position)
    torch.manual_seed(1)
    lengths = [37, 50, 13]
    utterances = [torch.randn(length, 80) for length in lengths]

    alone = [
        model(utterance.unsqueeze(0), torch.tensor([len(utterance)])) for utterance in utterances
    ]
    padded_to = 71
    batch = torch.full((3, padded_to, 80), 123.0)  # padding that must not matter
    for index, utterance in enumerate(utterances):
        batch[index, : len(utterance)] = utterance
    together = model(batch, torch.tensor(lengths))

    for index, single in enumerate(alone):
        steps = int(single.lengths_B[0])
        assert steps == int(together.lengths_B[index])
        torch.testing.assert_close(
            together.log_probs_BTV[index, :steps], single.log_probs_BTV[0], atol=1e-5, rtol=1e-5
        )
        for layer_alone, layer_together in zip(single.routing, together.routing):
            assert torch.equal(
                layer_together.experts_BT()[index, :steps], layer_alone.experts_BT()[0]
            )


def test_routing_is_reported_per_moe_layer_with_valid_frames_only() -> None:
    model = tiny_model("omni")
    output = model(torch.randn(2, 40, 80), torch.tensor([40, 21]))
    assert [info.layer for info in output.routing] == [0, 1, 2]
    assert {info.router_id for info in output.routing} == {0}
    valid = int(output.lengths_B.sum())
    assert valid == 10 + 6
    for info in output.routing:
        assert info.probs_NE.shape == (valid, 4)
        torch.testing.assert_close(info.probs_NE.sum(-1), torch.ones(valid))
        assert info.valid_BT.sum() == valid
    assert output.log_probs_BTV.dtype == torch.float32
    torch.testing.assert_close(output.log_probs_BTV.exp().sum(-1), torch.ones(2, 10))


def test_switch_routing_has_distinct_router_ids() -> None:
    output = tiny_model("switch")(torch.randn(1, 16, 80), torch.tensor([16]))
    assert [info.router_id for info in output.routing] == [0, 1, 2]


def test_dense_has_no_routing() -> None:
    output = tiny_model("dense")(torch.randn(1, 16, 80), torch.tensor([16]))
    assert output.routing == ()


def test_bf16_autocast_keeps_router_and_log_probs_in_fp32() -> None:
    model = tiny_model("omni")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(torch.randn(2, 24, 80), torch.tensor([24, 17]))
    assert output.log_probs_BTV.dtype == torch.float32
    assert output.routing[0].logits_NE.dtype == torch.float32
    assert torch.isfinite(output.log_probs_BTV).all()


def test_convolution_positions_see_exactly_their_kernel_of_neighbours() -> None:
    torch.manual_seed(0)
    positions = ConvolutionalPositions(model_dim=8, kernel_size=5, groups=4)
    x_BTD = torch.randn(1, 20, 8, requires_grad=True)
    out_BTD = positions(x_BTD, torch.tensor([20]))
    out_BTD[0, 10].sum().backward()
    reached = x_BTD.grad[0].abs().sum(-1) > 0
    assert reached.nonzero().squeeze(1).tolist() == [8, 9, 10, 11, 12]


def test_convolution_positions_need_an_odd_kernel_and_use_groups_dividing_the_width() -> None:
    with pytest.raises(ValueError, match="must be odd"):
        tiny_config("dense", position=PositionEncoding.convolution, conv_position_kernel=4)
    config = tiny_config("dense", model_dim=30, num_heads=2, conv_position_groups=16)
    assert build_model(config, vocab_size=12).positions.conv.groups == 2  # gcd(30, 16)


def _with_intermediate(layers: list[int], conditioning: bool):
    torch.manual_seed(0)
    config = dataclasses.replace(
        tiny_config("omni", dropout=0.0),
        intermediate_ctc_layers=layers,
        self_conditioning=conditioning,
    )
    return build_model(config, vocab_size=12)


def test_intermediate_ctc_predicts_with_the_shared_head_and_leaves_the_output_alone() -> None:
    torch.manual_seed(0)
    plain = build_model(tiny_config("omni", dropout=0.0), vocab_size=12).train()
    inner = _with_intermediate([0, 1], conditioning=False).train()
    inner.load_state_dict(plain.state_dict())  # no parameter of its own
    features, lengths = torch.randn(2, 40, 80), torch.tensor([40, 27])
    reference, output = plain(features, lengths), inner(features, lengths)
    torch.testing.assert_close(output.log_probs_BTV, reference.log_probs_BTV)
    assert len(output.intermediate_log_probs_BTV) == 2 and not reference.intermediate_log_probs_BTV
    # By hand: the blocks up to layer 1, then the final norm and head.
    x, step_lengths = inner.frontend(features, lengths)
    x = inner.positions(x, step_lengths)
    valid = valid_mask(step_lengths, x.shape[1])
    for block in inner.blocks[:2]:
        x, _ = block(x, valid)
    expected = inner.head(inner.final_norm(x)).log_softmax(-1)
    torch.testing.assert_close(output.intermediate_log_probs_BTV[1], expected)
    assert not inner.eval()(features, lengths).intermediate_log_probs_BTV  # not at inference


def test_self_conditioning_feeds_the_prediction_back_and_learns_its_projection() -> None:
    model = _with_intermediate([1], conditioning=True).train()
    features, lengths = torch.randn(2, 40, 80), torch.tensor([40, 27])
    output = model(features, lengths)
    assert model.conditioning is not None
    without = model.conditioning.weight.detach().clone()
    torch.nn.init.zeros_(model.conditioning.weight)
    torch.nn.init.zeros_(model.conditioning.bias)
    unconditioned = model(features, lengths)
    assert not torch.allclose(output.log_probs_BTV, unconditioned.log_probs_BTV)
    model.conditioning.weight.data.copy_(without)
    model(features, lengths).log_probs_BTV.sum().backward()
    assert model.conditioning.weight.grad.abs().sum() > 0
    assert len(model.eval()(features, lengths).intermediate_log_probs_BTV) == 1


@pytest.mark.parametrize(
    ("layers", "conditioning", "message"),
    [([3], False, "intermediate_ctc_layers"), ([], True, "self_conditioning")],
)
def test_intermediate_ctc_configs_are_checked(layers, conditioning, message) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(
            tiny_config("dense"), intermediate_ctc_layers=layers, self_conditioning=conditioning
        )
