"""Routed proposals (after RoE): ordinary decoding at K = 1 and at τ = 0, Gumbel-max sampling
from the router's distribution, the clean proposal 0, reproducible noise, one batched forward."""

import numpy as np
import pytest
import torch
from scipy import stats

from omnirouter.evaluate.decode import greedy_ctc_decode
from omnirouter.evaluate.proposals import Aggregate, forward_with_proposals
from omnirouter.model.routing import ProposalMode, RoutingProposals

from ..analysis.standins import make_batches, tiny_model


def proposals(count: int, temperature: float, seed: int = 0, **changes) -> RoutingProposals:
    return RoutingProposals(
        count, temperature, generator=torch.Generator().manual_seed(seed), **changes
    )


@pytest.fixture(scope="module")
def omni():
    return tiny_model("omni")


@pytest.fixture(scope="module")
def batch():
    return make_batches(num_utterances=3, batch_size=3)[0]


def test_one_proposal_is_ordinary_decoding_exactly(omni, batch) -> None:
    with torch.inference_mode():
        plain = omni(batch.features_BTF, batch.feature_lens_B)
        single = forward_with_proposals(
            omni, batch.features_BTF, batch.feature_lens_B, proposals(1, 5.0)
        )
    assert torch.equal(single.log_probs_BTV, plain.log_probs_BTV)
    assert torch.equal(single.lengths_B, plain.lengths_B)


@pytest.mark.parametrize("aggregate", list(Aggregate))
def test_at_zero_temperature_every_proposal_is_the_top1_path(omni, batch, aggregate) -> None:
    with torch.inference_mode():
        plain = omni(batch.features_BTF, batch.feature_lens_B)
        features = batch.features_BTF.repeat(4, 1, 1)
        routed = omni(features, batch.feature_lens_B.repeat(4), override=proposals(4, 0.0))
        merged = forward_with_proposals(
            omni, batch.features_BTF, batch.feature_lens_B, proposals(4, 0.0), aggregate
        )
    for plain_info, info in zip(plain.routing, routed.routing, strict=True):
        assert torch.equal(info.experts_BT(), plain_info.experts_BT().repeat(4, 1))
    torch.testing.assert_close(merged.log_probs_BTV, plain.log_probs_BTV, atol=1e-5, rtol=0)
    assert greedy_ctc_decode(merged.log_probs_BTV, merged.lengths_B) == greedy_ctc_decode(
        plain.log_probs_BTV, plain.lengths_B
    )


def test_proposal_zero_stays_clean_and_the_others_differ_at_a_high_temperature(omni, batch) -> None:
    with torch.inference_mode():
        plain = omni(batch.features_BTF, batch.feature_lens_B)
        routed = omni(
            batch.features_BTF.repeat(3, 1, 1),
            batch.feature_lens_B.repeat(3),
            override=proposals(3, 3.0),
        )
    size = batch.features_BTF.shape[0]
    for plain_info, info in zip(plain.routing, routed.routing, strict=True):
        experts_KBT = info.experts_BT().view(3, size, -1)
        assert torch.equal(experts_KBT[0], plain_info.experts_BT())
        valid = plain_info.valid_BT
        assert (experts_KBT[1][valid] != experts_KBT[0][valid]).any()
        # Gates are the clean routing's own (the top-1 probability), whichever expert computes.
        torch.testing.assert_close(info.gates_NK[:, 0], info.probs_NE.max(dim=1).values)


def test_proposals_are_seeded(omni, batch) -> None:
    def run(seed: int) -> torch.Tensor:
        with torch.inference_mode():
            return forward_with_proposals(
                omni, batch.features_BTF, batch.feature_lens_B, proposals(4, 1.0, seed)
            ).log_probs_BTV

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


def test_k_proposals_are_one_forward_of_a_k_times_batch(omni, batch) -> None:
    seen = []
    handle = omni.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[0]))
    try:
        with torch.inference_mode():
            forward_with_proposals(
                omni, batch.features_BTF, batch.feature_lens_B, proposals(8, 0.5)
            )
    finally:
        handle.remove()
    assert seen == [8 * batch.features_BTF.shape[0]]


def test_gumbel_proposals_sample_the_routers_distribution() -> None:
    # Gumbel-max: argmax(logits + G) is a draw from softmax(logits) (τ = 1).
    logits_E = torch.tensor([1.0, 0.0, -0.5, 0.5])
    frames = 40_000
    logits_EN = logits_E[:, None].expand(4, frames).contiguous()
    probs_EN = logits_EN.softmax(dim=0)
    # Two proposals of one utterance, proposal 0's all padding: every frame is a noisy one.
    valid_BT = torch.tensor([[False], [True]]).expand(2, frames)
    _, experts_NK = proposals(2, 1.0).choose(logits_EN, probs_EN, valid_BT, top_k=1)
    observed = np.bincount(experts_NK[:, 0].numpy(), minlength=4)
    expected = logits_E.double().softmax(dim=0).numpy() * frames
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_ranked_proposals_take_the_next_best_experts() -> None:
    probs_EN = torch.tensor([[0.1, 0.6], [0.5, 0.1], [0.3, 0.2], [0.1, 0.1]])
    ranked = RoutingProposals(3, mode=ProposalMode.ranked)
    valid_BT = torch.tensor([[False], [True], [True]])  # frame 0 in proposal 1, frame 1 in 2
    gates_NK, experts_NK = ranked.choose(probs_EN.log(), probs_EN, valid_BT, top_k=2)
    # Frame 0 ranks experts 1, 2, (0|3); proposal 1 → ranks 2 and 3. Frame 1 ranks 0, 2, ...
    assert experts_NK[0, 0].item() == 2
    assert experts_NK[1, 0].item() in (1, 3) and experts_NK[1, 1].item() in (1, 3)
    # The gates stay the clean top-2 probabilities of each frame.
    torch.testing.assert_close(gates_NK, torch.tensor([[0.5, 0.3], [0.6, 0.2]]))


def test_a_batch_that_is_not_k_copies_is_refused(omni, batch) -> None:
    features = batch.features_BTF[:1].repeat(3, 1, 1)  # 3 rows, declared as 2 proposals
    with pytest.raises(ValueError, match="copies of a batch"), torch.inference_mode():
        omni(features, batch.feature_lens_B[:1].repeat(3), override=proposals(2, 1.0))


def test_bad_proposals_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RoutingProposals(0)
    with pytest.raises(ValueError, match="negative"):
        RoutingProposals(2, temperature=-1.0)
