"""Structure of the three families: who owns which router, and the paper's parameter counts."""

import pytest
import torch

from omnirouter.model import ModelConfig, build_model, count_parameters
from omnirouter.model.moe import MoEFeedForward
from omnirouter.model.presets import PAPER_VOCAB_SIZE, preset
from tests.models import tiny_config


def tiny(family: str, **changes) -> ModelConfig:
    return tiny_config(family, **{"num_layers": 4, **changes})


def router_weights_of_layers(model) -> list[torch.Tensor]:
    return [
        block.feed_forward.router.proj.weight
        for block in model.blocks
        if isinstance(block.feed_forward, MoEFeedForward)
    ]


def router_keys(model) -> list[str]:
    return [key for key in model.state_dict() if "router" in key]


def test_omni_has_one_router_used_by_every_moe_layer() -> None:
    model = build_model(tiny("omni"), vocab_size=10)
    weights = router_weights_of_layers(model)
    assert len(weights) == 4
    assert all(weight is weights[0] for weight in weights)
    # parameters() and the state dict both hold it once.
    shared = [p for p in model.parameters() if p is weights[0]]
    assert len(shared) == 1
    assert router_keys(model) == ["routers.0.proj.weight"]
    assert weights[0].shape == (4, 32)  # E × D (nn.Linear stores W^T), no bias


def test_switch_has_one_router_per_moe_layer_and_dense_none() -> None:
    switch = build_model(tiny("switch"), vocab_size=10)
    weights = router_weights_of_layers(switch)
    assert len({id(weight) for weight in weights}) == 4
    assert len(router_keys(switch)) == 4
    dense = build_model(tiny("dense"), vocab_size=10)
    assert router_weights_of_layers(dense) == []
    assert router_keys(dense) == []


def test_router_groups_and_moe_layer_subset() -> None:
    grouped = build_model(tiny("switch", router_group_size=2), vocab_size=10)
    weights = router_weights_of_layers(grouped)
    assert weights[0] is weights[1] and weights[2] is weights[3] and weights[1] is not weights[2]
    partial = build_model(tiny("omni", moe_layers=[1, 3]), vocab_size=10)
    assert [block.is_moe for block in partial.blocks] == [False, True, False, True]


def test_dense_and_moe_feed_forwards_answer_the_same_call() -> None:
    model = build_model(tiny("omni", moe_layers=[1]), vocab_size=10)
    x_BTD = torch.randn(2, 7, 32)
    valid_BT = torch.arange(7) < torch.tensor([[7], [4]])
    dense, moe = (model.blocks[layer].feed_forward(x_BTD, valid_BT) for layer in (0, 1))
    assert dense.out_BTD.shape == moe.out_BTD.shape == x_BTD.shape
    assert dense.routing is None
    assert moe.routing is not None and moe.routing.probs_NE.shape == (7 + 4, 4)


def test_state_dict_round_trip_keeps_sharing() -> None:
    source = build_model(tiny("omni"), vocab_size=10)
    target = build_model(tiny("omni"), vocab_size=10)
    target.load_state_dict(source.state_dict())
    weights = router_weights_of_layers(target)
    assert all(weight is weights[0] for weight in weights)
    assert torch.equal(weights[0], source.routers[0].proj.weight)


# Paper Tables II-III: total parameters of the MoE models (8k word pieces + the CTC blank).
PAPER_MOE_SIZES = [
    ("paper-84m", 2, 156e6),
    ("paper-84m", 4, 290e6),
    ("paper-84m", 8, 559e6),
    ("paper-140m", 2, 246e6),
    ("paper-200m", 2, 345e6),
]


@pytest.mark.parametrize(("trunk", "num_experts", "paper_count"), PAPER_MOE_SIZES)
@pytest.mark.parametrize("family", ["switch", "omni"])
def test_paper_moe_parameter_counts_within_one_percent(
    trunk: str, num_experts: int, paper_count: float, family: str
) -> None:
    with torch.device("meta"):  # shapes only: no memory for 559M parameters
        model = build_model(preset(trunk, family, num_experts), PAPER_VOCAB_SIZE + 1)
    assert abs(count_parameters(model) - paper_count) / paper_count < 0.01


def hand_count_block(model_dim: int, ffn_dim: int) -> int:
    attention = 4 * model_dim * model_dim + 4 * model_dim  # q, k, v, out with biases
    ffn = 2 * model_dim * ffn_dim + ffn_dim + model_dim
    norms = 2 * 2 * model_dim
    return attention + ffn + norms


@pytest.mark.parametrize(
    ("trunk", "model_dim", "paper_count"),
    [("paper-84m", 512, 84e6), ("paper-140m", 768, 140e6), ("paper-200m", 1024, 200e6)],
)
def test_dense_counts_match_the_paper_without_the_output_layer(
    trunk: str, model_dim: int, paper_count: float
) -> None:
    with torch.device("meta"):
        model = build_model(preset(trunk, "dense"), PAPER_VOCAB_SIZE + 1)
    blocks = sum(p.numel() for p in model.blocks.parameters())
    assert blocks == 16 * hand_count_block(model_dim, 4096)
    # The paper's dense sizes are those of the 16 blocks: the 8k-way output layer (and the
    # 320→D input projection) are left out, unlike in its MoE sizes.
    assert abs(blocks - paper_count) / paper_count < 0.011
    head = model_dim * (PAPER_VOCAB_SIZE + 1) + PAPER_VOCAB_SIZE + 1
    frontend_and_final_norm = (320 * model_dim + model_dim) + 2 * model_dim
    # Convolutional positions: a grouped (16 groups) Conv1d of kernel 15 with bias.
    positions = model_dim * (model_dim // 16) * 15 + model_dim
    assert count_parameters(model) == blocks + head + frontend_and_final_norm + positions
