"""Whole-model properties: batch invariance, lengths, routing in the output, positions."""

import pytest
import torch

from omnirouter.model import build_model
from omnirouter.model.config import PositionEncoding
from omnirouter.model.frontend import ConvolutionalPositions, stacked_lengths
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
