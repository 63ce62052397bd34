"""The prefetcher's lookahead: the next MoE layer's router on the hidden state leaving a block."""

import numpy as np
import pytest
import torch

from omnirouter.analysis.lookahead import lookahead_routing
from omnirouter.analysis.records import RoutingCollector, load_records, save_records
from omnirouter.model.frontend import valid_mask

from .standins import make_batches, tiny_model


def block_outputs_by_hand(model, batch) -> list[torch.Tensor]:
    """Every block's output, running the model's parts one by one."""
    x_BTD, lengths_B = model.frontend(batch.features_BTF, batch.feature_lens_B)
    x_BTD = model.positions(x_BTD, lengths_B)
    valid_BT = valid_mask(lengths_B, x_BTD.shape[1])
    outputs = []
    for block in model.blocks:
        x_BTD, _ = block(x_BTD, valid_BT)
        outputs.append(x_BTD)
    return outputs


@pytest.mark.parametrize("family", ["switch", "omni"])
def test_lookahead_is_the_next_layers_router_on_this_layers_output(family: str) -> None:
    model = tiny_model(family)
    batch = make_batches(num_utterances=3, batch_size=3)[0]
    with torch.inference_mode():
        plain = model(batch.features_BTF, batch.feature_lens_B)
        with lookahead_routing(model):
            output = model(batch.features_BTF, batch.feature_lens_B)
        outputs = block_outputs_by_hand(model, batch)
        routed = []
        for layer in range(len(model.blocks) - 1):
            following = model.blocks[layer + 1]
            logits_BTE = following.feed_forward.router.proj(following.ffn_norm(outputs[layer]))
            routed.append(logits_BTE.argmax(dim=-1))
    assert all(info.lookahead_N is None for info in plain.routing)
    torch.testing.assert_close(output.log_probs_BTV, plain.log_probs_BTV)  # nothing else changes
    valid_BT = output.routing[0].valid_BT
    for layer, expected_BT in enumerate(routed):
        torch.testing.assert_close(output.routing[layer].lookahead_N, expected_BT[valid_BT])
    assert output.routing[-1].lookahead_N is None  # no next layer to predict
    # Hooks are gone afterwards.
    with torch.inference_mode():
        after = model(batch.features_BTF, batch.feature_lens_B)
    assert all(info.lookahead_N is None for info in after.routing)


def test_records_keep_the_lookahead_through_a_save_and_load(tmp_path) -> None:
    model = tiny_model("omni")
    collector = RoutingCollector(stack_frames=4)
    with torch.inference_mode(), lookahead_routing(model):
        for batch in make_batches(num_utterances=4, batch_size=2):
            collector(batch, model(batch.features_BTF, batch.feature_lens_B))
    records = collector.records("tiny", "omni")
    lookahead_LN = records.lookahead()
    assert lookahead_LN.shape == records.experts_LN.shape
    assert (lookahead_LN[:-1] >= 0).all() and (lookahead_LN[-1] == -1).all()
    # For the shared router the prediction is informative: it often names the next choice.
    agreement = (lookahead_LN[:-1] == records.experts_LN[1:]).mean()
    assert agreement > 1 / records.num_experts
    loaded = load_records(save_records(records, tmp_path, "tiny"))
    np.testing.assert_array_equal(loaded.lookahead(), lookahead_LN)


def test_run_directories_are_named_with_their_model(tmp_path) -> None:
    from omnirouter.analysis.experiments import experiment_name

    assert experiment_name(tmp_path / "demo" / "omni" / "seed0") == "omni-seed0"
    assert experiment_name(tmp_path / "my-omni-run") == "my-omni-run"
