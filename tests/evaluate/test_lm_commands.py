"""`omnirouter lm build`, `omnirouter lm tune` and `omnirouter eval --decoder beam` on a tiny
untrained model: the files each writes, and the tuned weights used afterwards."""

import json
import os
import shutil

import pytest

from omnirouter.cli import build_parser, main

from .test_end_to_end import experiment  # noqa: F401  (the fixture)

pytest.importorskip("kenlm")
pytest.importorskip("pyctcdecode")


def run(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return args.run(args)


@pytest.fixture(scope="module")
def lm_dir(mini_corpus):
    # The mini corpus has no training set: its dev and test transcripts stand in.
    assert run("lm", "build", str(mini_corpus), "--sets", "dev,test", "--order", "2") == 0
    return mini_corpus / "lm"


def test_build_writes_arpa_binary_and_words(lm_dir):
    assert {path.name for path in lm_dir.iterdir()} == {
        "lm.arpa",
        "lm.bin",
        "unigrams.txt",
        "lm.json",
    }
    words = lm_dir.joinpath("unigrams.txt").read_text().split()
    assert "smith" in words and "Mr." not in words  # normalised as the tokenizer sees text
    info = json.loads((lm_dir / "lm.json").read_text())
    assert info["order"] == 2 and info["smoothing"].startswith("modified Kneser-Ney")


def test_tune_then_eval_uses_the_tuned_weights(lm_dir, experiment, capsys):  # noqa: F811
    grid = ["--lm-weights", "0,1", "--word-scores", "0,1", "--beam-size", "4"]
    assert run("lm", "tune", str(experiment), "--set", "dev", "--device", "cpu", *grid) == 0
    out = capsys.readouterr().out
    assert "real-time factor" in out and "tuned:" in out
    tuning = json.loads((lm_dir / "tuning.json").read_text())
    (key,) = tuning
    assert key == os.path.relpath(experiment.resolve(), lm_dir.resolve())  # moves with both
    ((search, entry),) = tuning[key].items()
    assert search == entry["search"] == "lexicon"
    assert entry["set_name"] == "dev" and len(entry["grid"]) == 4
    assert entry["wer"] == min(point["wer"] for point in entry["grid"])

    argv = ["eval", str(experiment), "--sets", "test", "--device", "cpu", "--decoder", "beam"]
    assert run(*argv) == 0
    table = json.loads((experiment / "eval-lm" / "wer.json").read_text())
    assert table["extra"]["decoder"] == "beam"
    assert table["extra"]["lm_weight"] == entry["lm_weight"]
    assert table["extra"]["word_score"] == entry["word_score"]
    assert table["extra"]["beam_size"] == 4
    assert table["extra"]["search"] == "lexicon"
    assert "--decoder beam" in table["command"]
    assert "CTC beam search (beam 4)" in (experiment / "eval-lm" / "wer.md").read_text()
    assert not (experiment / "eval" / "wer.json").exists()  # greedy results stay apart


def test_eval_with_a_missing_lm_names_it_and_writes_nothing(experiment, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "out"
    missing = tmp_path / "no-lm"
    argv = ["eval", str(experiment), "--device", "cpu", "--decoder", "beam", "--lm", str(missing)]
    assert main([*argv, "--out", str(out)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not out.exists()


def test_lm_options_need_the_beam_decoder(experiment):  # noqa: F811
    with pytest.raises(ValueError, match="--decoder beam"):
        run("eval", str(experiment), "--device", "cpu", "--lm-weight", "1")
    with pytest.raises(ValueError, match="--decoder beam"):
        run("eval", str(experiment), "--device", "cpu", "--open-vocabulary")


def test_transcribe_with_the_beam_decoder(lm_dir, experiment, mini_corpus):  # noqa: F811
    from omnirouter.evaluate.beam import BeamRequest
    from omnirouter.evaluate.transcribe import Transcriber

    request = BeamRequest(lm=lm_dir, beam_size=4, lm_weight=0.5, word_score=0.0)
    transcriber = Transcriber.from_pretrained(experiment, vad=None, beam=request)
    assert transcriber.beam is not None and transcriber.beam.config.beam_size == 4
    transcript = transcriber.transcribe(mini_corpus / "test0.wav")
    assert set(transcript.text) <= set("abcdefghijklmnopqrstuvwxyz0123456789' ⁇")
    words = set(lm_dir.joinpath("unigrams.txt").read_text().split())
    assert set(transcript.text.split()) <= words  # the lexicon search writes LM words only


def test_build_takes_extra_text(mini_corpus, tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("Zebras graze.\nA zebra's stripes\n")
    out = tmp_path / "lm"
    assert (
        run(
            "lm",
            "build",
            str(mini_corpus),
            "--sets",
            "dev",
            "--text",
            str(extra),
            "--out",
            str(out),
        )
        == 0
    )
    words = set(out.joinpath("unigrams.txt").read_text().split())
    assert {"zebras", "zebra's", "smith"} <= words and "shells" not in words  # test set left out


def test_build_reads_a_synthetic_corpus_training_text_by_default(mini_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(mini_corpus, corpus, ignore=shutil.ignore_patterns("lm"))
    (corpus / "training_text.txt").write_text("Zebras graze.\nA zebra's stripes.\n")
    assert run("lm", "build", str(corpus), "--order", "2") == 0
    words = set((corpus / "lm" / "unigrams.txt").read_text().split())
    assert words == {"zebras", "graze", "a", "zebra's", "stripes"}  # no transcript read
    info = json.loads((corpus / "lm" / "lm.json").read_text())
    assert info["sources"] == [str(corpus / "training_text.txt")]

    argv = ["lm", "build", str(corpus), "--order", "2", "--no-corpus-text", "--sets", "dev"]
    assert run(*argv) == 0
    words = set((corpus / "lm" / "unigrams.txt").read_text().split())
    assert "smith" in words and "zebras" not in words
