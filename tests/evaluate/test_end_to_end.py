"""`omnirouter eval` and `omnirouter transcribe` on a checkpoint of a tiny untrained model."""

import json

import pytest
import torch

from omnirouter.config import config_to_dict
from omnirouter.data.config import DataConfig
from omnirouter.data.tokenizer import Tokenizer
from omnirouter.evaluate.model_file import step_checkpoint_path
from omnirouter.evaluate.transcribe import Transcriber
from omnirouter.model import Family, ModelConfig, build_model
from omnirouter.train.checkpoint import save_checkpoint
from omnirouter.train.config import RunConfig

from .conftest import SENTENCES
from .test_cli import parser


@pytest.fixture(scope="module")
def experiment(mini_corpus, tmp_path_factory):
    tokenizer = Tokenizer.load(mini_corpus / "tokenizer")
    model_config = ModelConfig(
        family=Family.omni, model_dim=32, num_heads=4, num_layers=2, ffn_dim=64, num_experts=2
    )
    data_config = DataConfig(corpus_dir=str(mini_corpus), num_workers=0)
    torch.manual_seed(0)
    model = build_model(model_config, tokenizer.vocab_size)
    exp = tmp_path_factory.mktemp("exp")
    save_checkpoint(
        step_checkpoint_path(exp, 7),
        {
            "step": 7,
            "model": model.state_dict(),
            "config": config_to_dict(RunConfig(model=model_config, data=data_config)),
            "tokenizer_model": tokenizer.model_path.read_bytes(),
        },
    )
    return exp


def test_eval_then_transcribe_agree(experiment, mini_corpus, capsys):
    args = parser().parse_args(["eval", str(experiment), "--max-duration", "3", "--device", "cpu"])
    assert args.run(args) == 0
    table = json.loads((experiment / "eval" / "wer.json").read_text())
    assert [row["set_name"] for row in table["rows"]] == ["dev", "test"]
    assert table["averaged_sets"] == ["test"]
    assert table["extra"]["step"] == 7
    assert table["command"] == (
        f"omnirouter eval {experiment} --max-duration 3.0 --normalizer whisper-english --device cpu"
    )
    assert "| dev | dev |" in capsys.readouterr().out

    # Transcribing a test file whole (without the voice-activity detector, which would leave
    # out its edges) gives the hypothesis `eval` wrote for it: one path, one answer.
    recognitions = [
        json.loads(line)
        for line in (experiment / "eval" / "recogs-test.jsonl").read_text().splitlines()
    ]
    assert [r["reference"] for r in recognitions] == SENTENCES["test"]
    transcriber = Transcriber.from_pretrained(experiment, vad=None)
    for index, recognition in enumerate(recognitions):
        transcript = transcriber.transcribe(mini_corpus / f"test{index}.wav")
        assert transcript.text == recognition["hypothesis"].strip()


def test_transcribe_command(experiment, mini_corpus, tmp_path, capsys):
    missing = tmp_path / "missing.flac"
    audio = [str(mini_corpus / "dev0.wav"), str(missing), str(mini_corpus / "dev1.wav")]
    args = parser().parse_args(["transcribe", str(experiment), *audio, "--format", "json"])
    assert args.run(args) == 1
    out, err = capsys.readouterr()
    records = json.loads(out)
    assert [("error" in record) for record in records] == [False, True, False]
    assert str(missing) in err
