"""Word errors by training frequency: hand-counted buckets, and the command on a real corpus."""

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from omnirouter.cli import evaluate as cli
from omnirouter.config import save_config
from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.set_report import write_set_files
from omnirouter.evaluate.wer import Recognition, score_set
from omnirouter.evaluate.word_frequency import bucket_label, errors_by_frequency
from tests.corpora import espeak_corpus
from tests.train.conftest import tiny_run_config


def test_buckets_by_hand() -> None:
    counts = Counter({"the": 150, "cat": 5, "sat": 1})
    recognitions = [
        # cat -> hat (a 3-9 word), on -> mat (unseen); mat (unseen) right
        Recognition("u1", "the cat sat on mat", "the hat sat mat mat"),
        Recognition("u2", "the the", "the the extra"),  # one insertion
    ]
    score = score_set("test", recognitions, get_normalizer("none"))
    result = errors_by_frequency(score, counts)
    by_label = {bucket.label: bucket for bucket in result.buckets}
    assert (by_label["unseen"].reference_words, by_label["unseen"].errors) == (2, 1)
    assert (by_label["1–2"].reference_words, by_label["1–2"].errors) == (1, 0)
    assert (by_label["3–9"].reference_words, by_label["3–9"].errors) == (1, 1)
    assert by_label["10–99"].reference_words == 0
    assert (by_label["≥100"].reference_words, by_label["≥100"].errors) == (3, 0)
    assert result.insertions == 1 and result.reference_words == 7
    # The buckets and the insertions make up the set's WER exactly.
    assert result.wer_percent == pytest.approx(100 * 3 / 7)
    assert result.wer_percent == pytest.approx(100 * score.counts.wer)
    assert by_label["3–9"].error_rate_percent == 100.0
    assert result.wer_part_percent(by_label["unseen"].errors) == pytest.approx(100 / 7)


@pytest.mark.parametrize(
    ("count", "label"),
    [
        (0, "unseen"),
        (1, "1–2"),
        (2, "1–2"),
        (3, "3–9"),
        (9, "3–9"),
        (10, "10–99"),
        (99, "10–99"),
        (100, "≥100"),
        (12345, "≥100"),
    ],
)
def test_bucket_edges(count: int, label: str) -> None:
    assert bucket_label(count) == label


def test_command_counts_the_corpus_training_transcripts(tmp_path: Path, capsys) -> None:
    corpus = espeak_corpus(tmp_path / "corpus", 0.4, 0.2, ["en-us"])
    experiment = tmp_path / "exp"
    experiment.mkdir()
    save_config(tiny_run_config(corpus), experiment / "config.yaml")
    # The reference: the training manifest read directly, normalised as the scoring is.
    normalizer = get_normalizer()
    with gzip.open(corpus / "cuts_train.jsonl.gz", "rt") as stream:
        texts = [json.loads(line)["supervisions"][0]["text"] for line in stream]
    counts = Counter(word for text in texts for word in normalizer(text).split())
    frequent = max(counts, key=counts.__getitem__)
    recognitions = [
        Recognition("a", f"{frequent} zyxwvut", f"{frequent} zyxwvu"),
        Recognition("b", texts[0], texts[0]),
    ]
    write_set_files(score_set("dev", recognitions, normalizer), experiment / "eval")
    args = _parser().parse_args(["word-errors", str(experiment)])
    assert args.run(args) == 0
    assert "## dev: WER" in capsys.readouterr().out
    record = json.loads((experiment / "eval" / "word-frequency.json").read_text())
    (dev,) = record["sets"]
    buckets = {bucket["label"]: bucket for bucket in dev["buckets"]}
    assert buckets["unseen"] == {"label": "unseen", "reference_words": 1, "errors": 1}
    words = [frequent, *normalizer(texts[0]).split()]
    expected = Counter(bucket_label(counts[word]) for word in words)
    assert {label: bucket["reference_words"] for label, bucket in buckets.items()} == {
        label: expected[label] + (label == "unseen") for label in buckets
    }
    assert dev["wer_percent"] == pytest.approx(100 / (len(words) + 1))
    assert (experiment / "eval" / "word-frequency.md").is_file()


def test_command_names_a_set_that_was_not_scored(tmp_path: Path) -> None:
    experiment = tmp_path / "exp"
    (experiment / "eval").mkdir(parents=True)
    save_config(tiny_run_config(tmp_path), experiment / "config.yaml")
    args = _parser().parse_args(["word-errors", str(experiment), "--sets", "test"])
    with pytest.raises(FileNotFoundError, match="'test' was not scored"):
        args.run(args)
    args = _parser().parse_args(["word-errors", str(tmp_path / "nothing")])
    with pytest.raises(FileNotFoundError, match="not an experiment directory"):
        args.run(args)


def _parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="omnirouter")
    cli.register(root.add_subparsers(dest="command", required=True))
    return root
