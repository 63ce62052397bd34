import json

import jiwer
import pytest

from omnirouter.data.config import DataConfig
from omnirouter.data.corpus import CorpusInfo, SetInfo, write_corpus_info
from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.suite import EvalSet, default_eval_sets, evaluate_sets
from omnirouter.evaluate.tables import read_eval_table

from .conftest import SENTENCES, make_batch, tiny_model


def test_every_set_gets_its_files_and_a_row(tmp_path, tokenizer):
    model = tiny_model("switch").eval()
    eval_sets = [
        EvalSet("dev", "dev", [make_batch([30, 20], seed=1, prefix="d")]),
        EvalSet("test_a", "test", [make_batch([25], seed=2), make_batch([40, 12], seed=3)]),
        EvalSet("test_b", "test", [make_batch([33, 31, 8], seed=4)]),
    ]
    english = get_normalizer("whisper-english")
    result = evaluate_sets(
        model, tokenizer, eval_sets, tmp_path, normalizer=english, model_name="exp/switch"
    )
    for name in ("dev", "test_a", "test_b"):
        assert (tmp_path / f"errs-{name}.txt").is_file()
        records = [
            json.loads(line)
            for line in (tmp_path / f"recogs-{name}.jsonl").read_text().splitlines()
        ]
        # The set's WER is jiwer's on the normalised texts of the written recognitions.
        expected = jiwer.wer(
            [r["normalized_reference"] for r in records],
            [r["normalized_hypothesis"] for r in records],
        )
        summary = json.loads((tmp_path / f"wer-{name}.json").read_text())
        assert summary["wer_percent"] == pytest.approx(100 * expected)
        assert [english(r["reference"]) for r in records] == [
            r["normalized_reference"] for r in records
        ]
    table = read_eval_table(result.table_files.json)
    assert [row.set_name for row in table.rows] == ["dev", "test_a", "test_b"]
    assert [row.set_name for row in table.averaged_rows] == ["test_a", "test_b"]
    assert table.normalizer_version == english.version
    assert table.model == "exp/switch"
    assert "torch_version" in table.extra


def test_default_sets_are_dev_then_the_test_sets(tmp_path):
    sets = (
        SetInfo("train", "train"),
        SetInfo("dev", "dev"),
        SetInfo("test", "test"),
        SetInfo("test_noisy", "test"),
    )
    write_corpus_info(tmp_path, CorpusInfo("synth", sets))
    config = DataConfig(corpus_dir=str(tmp_path))
    assert default_eval_sets(config) == ["dev", "test", "test_noisy"]
    chosen = DataConfig(corpus_dir=str(tmp_path), test_sets=["test_noisy"], dev_set="none")
    assert default_eval_sets(chosen) == ["test_noisy"]


def test_real_loaders_and_tokenizer(mini_corpus, tmp_path):
    from omnirouter.data.loader import build_eval_loader, eval_cuts
    from omnirouter.data.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(mini_corpus / "tokenizer")
    config = DataConfig(
        corpus_dir=str(mini_corpus), num_workers=0, max_duration=5.0, max_utterance_seconds=5.0
    )
    model = tiny_model("omni", vocab_size=tokenizer.vocab_size).eval()
    names = default_eval_sets(config)
    assert names == ["dev", "test"]
    eval_sets = [
        EvalSet(name, role, build_eval_loader(config, eval_cuts(config, name), tokenizer))
        for name, role in zip(names, ["dev", "test"])
    ]
    result = evaluate_sets(model, tokenizer, eval_sets, tmp_path)
    for score, name in zip(result.scores, names):
        assert [u.cut_id for u in score.utterances] == [
            f"{name}-{index}" for index in range(len(SENTENCES[name]))
        ]
        assert [u.reference for u in score.utterances] == SENTENCES[name]
    # "Mr. Smith paid twenty five dollars" -> "mister smith paid $25": 4 words
    assert result.scores[0].counts.reference_words == 6 + 4
    assert result.table.average_wer_percent == pytest.approx(100 * result.scores[1].wer)
