"""Importing a set the corpus already has is refused unless asked; replacing it removes the
corpus's tokenizers trained on its old text (their pieces may not cover the new one)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from omnirouter.cli import main
from omnirouter.data.corpus import cuts_path, read_corpus_info
from omnirouter.data.errors import SetExistsError
from omnirouter.data.manifests import cut_text, read_manifest
from omnirouter.data.prepare import PrepareOptions, import_corpus, train_corpus_tokenizer
from omnirouter.data.tokenizer import INFO_FILE, MODEL_FILE, TokenizerConfig
from tests.data.conftest import write_tsv

NEW_TEXTS = ("ζωή και θάνατος", "ξένος ψυχή", "φως")  # letters the old tokenizer never saw


@pytest.fixture
def corpus(tmp_path: Path, spoken: dict[str, Path]) -> Path:
    """train (3 utterances) and dev (1), a default tokenizer trained on train and one on dev."""
    items = [(path, text) for text, path in spoken.items()]
    corpus = tmp_path / "corpus"
    sources = {
        "train": write_tsv(tmp_path / "train.tsv", items[:3]),
        "dev": write_tsv(tmp_path / "dev.tsv", items[3:4]),
    }
    import_corpus(corpus, "c", sources)
    train_corpus_tokenizer(corpus, TokenizerConfig(vocab_size=30))
    train_corpus_tokenizer(
        corpus, TokenizerConfig(vocab_size=20, path=str(corpus / "tok_dev")), ["dev"]
    )
    return corpus


def new_train_table(tmp_path: Path, spoken: dict[str, Path]) -> Path:
    paths = list(spoken.values())[5:8]
    return write_tsv(tmp_path / "new_train.tsv", list(zip(paths, NEW_TEXTS, strict=True)))


def texts(corpus: Path, set_name: str) -> list[str]:
    return [cut_text(cut) for cut in read_manifest(cuts_path(corpus, set_name))]


def test_importing_an_existing_set_again_is_refused(
    corpus: Path, tmp_path: Path, spoken: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    before = texts(corpus, "train")
    table = new_train_table(tmp_path, spoken)
    with pytest.raises(SetExistsError, match=r"already has the set\(s\) 'train' \(3 utterances\)"):
        import_corpus(corpus, "c", {"train": table})
    assert main(["data", "import", str(corpus), "--set", f"train={table}"]) == 2
    error = capsys.readouterr().err
    assert "already has the set(s) 'train'" in error and "--replace" in error
    assert texts(corpus, "train") == before
    assert (corpus / "tokenizer_unigram_30" / MODEL_FILE).is_file()


def test_replacing_a_set_removes_the_tokenizers_trained_on_its_old_text(
    corpus: Path,
    tmp_path: Path,
    spoken: dict[str, Path],
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = new_train_table(tmp_path, spoken)
    with caplog.at_level(logging.WARNING):
        assert main(["data", "import", str(corpus), "--set", f"train={table}", "--replace"]) == 0
    assert "train" in capsys.readouterr().out
    assert texts(corpus, "train") == list(NEW_TEXTS)
    assert read_corpus_info(corpus).set("train").num_utterances == 3
    assert not (corpus / "tokenizer_unigram_30").exists()  # trained on the old train text
    assert (corpus / "tok_dev" / MODEL_FILE).is_file()  # trained on dev only: still valid
    (warning,) = [record.getMessage() for record in caplog.records if "removed" in record.msg]
    assert "tokenizer_unigram_30" in warning and "train" in warning
    assert f"omnirouter data tokenizer {corpus}" in warning

    # Trained again (as training does when it finds none), it covers the new text.
    tokenizer = train_corpus_tokenizer(corpus, TokenizerConfig(vocab_size=30))
    assert all(tokenizer.unknown_characters(text) == "" for text in NEW_TEXTS)


def test_a_tokenizer_that_does_not_record_its_sets_learnt_from_the_training_sets(
    corpus: Path, tmp_path: Path, spoken: dict[str, Path]
) -> None:
    info_path = corpus / "tokenizer_unigram_30" / INFO_FILE
    details = json.loads(info_path.read_text())
    assert details["corpus_sets"] == ["train"]
    del details["corpus_sets"]  # as tokenizers trained before sets were recorded
    info_path.write_text(json.dumps(details))
    replace = PrepareOptions(replace_sets=True)
    dev = write_tsv(tmp_path / "new_dev.tsv", [(next(iter(spoken.values())), "φως")])
    import_corpus(corpus, "c", {"dev": dev}, options=replace)
    assert (corpus / "tokenizer_unigram_30" / MODEL_FILE).is_file()  # dev is no training set
    assert not (corpus / "tok_dev").exists()
    import_corpus(corpus, "c", {"train": new_train_table(tmp_path, spoken)}, options=replace)
    assert not (corpus / "tokenizer_unigram_30").exists()
