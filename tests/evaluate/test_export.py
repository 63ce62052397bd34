"""`omnirouter export`: a trained model as model.safetensors + config.json + tokenizer/, read
back by `load_inference_model` (and so by `eval` and `transcribe`)."""

import json
import re
import shutil

import pytest
import torch

from omnirouter.cli import main
from omnirouter.config import config_to_dict
from omnirouter.data.config import DataConfig
from omnirouter.data.tokenizer import Tokenizer
from omnirouter.evaluate.model_file import (
    CheckpointError,
    export_inference_model,
    load_inference_model,
    step_checkpoint_path,
)
from omnirouter.evaluate.suite import evaluate_checkpoint
from omnirouter.evaluate.transcribe import Transcriber
from omnirouter.model import Family, ModelConfig, build_model
from omnirouter.train.checkpoint import save_checkpoint
from omnirouter.train.config import RunConfig

from .conftest import make_batch


def trained_experiment(root, corpus, family: str):
    """An experiment directory whose checkpoint holds a tiny model after three Adam steps."""
    tokenizer = Tokenizer.load(corpus / "tokenizer")
    model_config = ModelConfig(
        family=Family(family), model_dim=32, num_heads=4, num_layers=2, ffn_dim=64, num_experts=2
    )
    torch.manual_seed(0)
    model = build_model(model_config, tokenizer.vocab_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = make_batch([40, 32], seed=1)
    for _ in range(3):
        output = model(batch.features_BTF, batch.feature_lens_B)
        loss = torch.nn.functional.ctc_loss(
            output.log_probs_BTV.transpose(0, 1),
            batch.targets_BU,
            output.lengths_B,
            batch.target_lens_B,
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    exp = root / f"exp-{family}"
    save_checkpoint(
        step_checkpoint_path(exp, 3),
        {
            "step": 3,
            "model": model.state_dict(),
            "config": config_to_dict(
                RunConfig(model=model_config, data=DataConfig(corpus_dir=str(corpus)))
            ),
            "tokenizer_model": tokenizer.model_path.read_bytes(),
        },
    )
    return exp


def log_probs(path, batch) -> torch.Tensor:
    model = load_inference_model(path).model
    with torch.no_grad():
        return model(batch.features_BTF, batch.feature_lens_B).log_probs_BTV


@pytest.mark.parametrize("family", ["omni", "switch", "dense"])
def test_exported_model_gives_the_checkpoints_log_probs(mini_corpus, tmp_path, family):
    exp = trained_experiment(tmp_path, mini_corpus, family)
    out = tmp_path / "shared"
    assert main(["export", str(exp), "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer",
    ]
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == 3 and config["model"]["family"] == family
    assert config["tokenizer"]["vocab_size"] == Tokenizer.load(out / "tokenizer").vocab_size
    assert config["data"]["corpus_dir"] == str(mini_corpus)

    batch = make_batch([50, 37, 20], seed=2)
    from_checkpoint = log_probs(exp, batch)
    assert not torch.equal(from_checkpoint, log_probs(exp, make_batch([50, 37, 20], seed=3)))
    assert torch.equal(log_probs(out, batch), from_checkpoint)
    loaded = load_inference_model(out)
    assert loaded.step == 3 and loaded.checkpoint_path == out / "model.safetensors"

    # An export that exists is kept unless asked to replace it.
    with pytest.raises(FileExistsError, match="not empty"):
        export_inference_model(exp, out)
    export_inference_model(exp, out, overwrite=True)
    assert torch.equal(log_probs(out, batch), from_checkpoint)


def test_eval_and_transcribe_read_an_exported_model(mini_corpus, tmp_path):
    exp = trained_experiment(tmp_path, mini_corpus, "omni")
    out = export_inference_model(exp, tmp_path / "shared")
    from_checkpoint = evaluate_checkpoint(exp, sets=["test"], out_dir=tmp_path / "eval")
    exported = evaluate_checkpoint(out, sets=["test"])  # into DIR/eval
    assert (out / "eval" / "wer.json").is_file()
    hypotheses = [
        [utterance.hypothesis for utterance in result.scores[0].utterances]
        for result in (from_checkpoint, exported)
    ]
    assert hypotheses[0] == hypotheses[1]
    audio = mini_corpus / "test0.wav"
    assert (
        Transcriber.from_pretrained(out).transcribe(audio).text
        == Transcriber.from_pretrained(exp).transcribe(audio).text
    )


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_weights_file_is_named(mini_corpus, tmp_path, capsys, damage):
    exp = trained_experiment(tmp_path, mini_corpus, "omni")
    out = export_inference_model(exp, tmp_path / "shared")
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x17" * 4000)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(weights))}.*corrupt"):
        load_inference_model(out)
    assert main(["transcribe", str(out), str(mini_corpus / "test0.wav")]) == 2
    assert f"{weights} is truncated, corrupt" in capsys.readouterr().err


def test_weights_of_another_model_are_refused(mini_corpus, tmp_path):
    out = export_inference_model(
        trained_experiment(tmp_path, mini_corpus, "omni"), tmp_path / "omni"
    )
    other = export_inference_model(
        trained_experiment(tmp_path, mini_corpus, "dense"), tmp_path / "dense"
    )
    shutil.copyfile(other / "model.safetensors", out / "model.safetensors")
    with pytest.raises(CheckpointError, match="not this model's weights"):
        load_inference_model(out)
