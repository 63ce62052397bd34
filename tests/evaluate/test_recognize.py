import itertools

import torch

from omnirouter.data.config import DataConfig
from omnirouter.data.loader import build_eval_loader
from omnirouter.data.tokenizer import Tokenizer
from omnirouter.evaluate.recognize import recognize
from omnirouter.model import RoutingOverride

from .conftest import make_batch, tiny_model


def collapse(labels: list[int]) -> list[int]:
    return [label for label, _ in itertools.groupby(labels) if label != 0]


def alone(model, features_TF: torch.Tensor) -> list[int]:
    """Greedy labels of one utterance run on its own, without padding."""
    with torch.no_grad():
        output = model(features_TF.unsqueeze(0), torch.tensor([features_TF.shape[0]]))
    return collapse(output.log_probs_BTV[0].argmax(-1).tolist())


def test_recognitions_follow_the_batches_and_ignore_padding(tokenizer):
    model = tiny_model("omni").eval()
    batches = [make_batch([40, 23, 9], seed=1, prefix="a"), make_batch([31], seed=2, prefix="b")]
    recognitions = recognize(model, batches, tokenizer, "cpu", progress=False)
    assert [r.cut_id for r in recognitions] == ["a0", "a1", "a2", "b0"]
    assert [r.reference for r in recognitions] == [
        "reference a 0",
        "reference a 1",
        "reference a 2",
        "reference b 0",
    ]
    assert any(r.hypothesis for r in recognitions)  # the comparison below is not vacuous
    index = 0
    for batch in batches:
        for row in range(batch.size):
            length = int(batch.feature_lens_B[row])
            expected = tokenizer.decode(alone(model, batch.features_BTF[row, :length]))
            assert recognitions[index].hypothesis == expected
            index += 1


def test_runs_in_eval_mode_and_restores_training_mode(tokenizer):
    model = tiny_model("switch")
    model.train()
    modes: list[bool] = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    first = recognize(model, [make_batch([30, 20], seed=3)], tokenizer, "cpu", progress=False)
    second = recognize(model, [make_batch([30, 20], seed=3)], tokenizer, "cpu", progress=False)
    assert modes == [False, False]
    assert model.training
    assert first == second  # no dropout at evaluation


def test_outputs_reach_the_callback_without_autograd(tokenizer):
    model = tiny_model("omni").eval()
    seen = []
    recognize(
        model,
        [make_batch([30, 20], seed=4), make_batch([12], seed=5)],
        tokenizer,
        "cpu",
        on_output=lambda batch, output: seen.append((batch.cut_ids, output)),
        progress=False,
    )
    assert [cut_ids for cut_ids, _ in seen] == [("utt0", "utt1"), ("utt0",)]
    output = seen[0][1]
    assert len(output.routing) == 3  # one record per MoE layer
    assert not output.log_probs_BTV.requires_grad
    assert output.routing[0].experts_NK.shape[0] == int(output.lengths_B.sum())


def test_override_reaches_the_routers(tokenizer):
    model = tiny_model("omni").eval()
    routings = []
    override = RoutingOverride(1.0, torch.Generator().manual_seed(0))
    recognize(
        model,
        [make_batch([200], seed=6)],
        tokenizer,
        "cpu",
        override=override,
        on_output=lambda batch, output: routings.append(output.routing[0]),
        progress=False,
    )
    routing = routings[0]
    # With p = 1 every frame goes to a uniformly drawn expert, so about 3/4 of the frames
    # leave the router's own top-1 (4 experts, 50 frames).
    moved = (routing.experts_NK[:, 0] != routing.top1_N()).float().mean()
    assert 0.4 < moved < 1.0


def test_the_progress_bar_of_an_evaluation_set_has_its_total(mini_corpus, capsys):
    tokenizer = Tokenizer.load(mini_corpus / "tokenizer")
    config = DataConfig(
        corpus_dir=str(mini_corpus), max_duration=4.0, max_utterance_seconds=4.0, num_workers=0
    )
    loader = build_eval_loader(config, "test", tokenizer)
    batches = len(list(loader))
    assert batches > 1
    recognize(tiny_model(vocab_size=tokenizer.vocab_size), loader, tokenizer, "cpu")
    bar = capsys.readouterr().err
    assert "100%" in bar and f"{batches}/{batches}" in bar, bar
