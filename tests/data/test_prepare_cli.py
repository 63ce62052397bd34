from __future__ import annotations

from pathlib import Path

import pytest

from omnirouter.cli import main
from omnirouter.data.corpus import read_corpus_info
from omnirouter.data.tokenizer import Tokenizer
from tests.data.conftest import write_tsv


def test_import_then_tokenizer(
    tmp_path: Path, spoken: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    items = [(path, text) for text, path in spoken.items()]
    train = write_tsv(tmp_path / "train.tsv", items[:6])
    heldout = write_tsv(tmp_path / "heldout.tsv", items[6:8])
    corpus = tmp_path / "corpus"
    arguments = ["data", "import", str(corpus), "--set", f"train={train}"]
    assert main([*arguments, "--set", f"heldout={heldout}", "--role", "heldout=dev"]) == 0
    assert "heldout" in capsys.readouterr().out
    info = read_corpus_info(corpus)
    assert [(s.name, s.role, s.num_utterances) for s in info.sets] == [
        ("train", "train", 6),
        ("heldout", "dev", 2),
    ]
    assert main(["data", "tokenizer", str(corpus), "--vocab-size", "45"]) == 0
    printed = capsys.readouterr().out
    assert "tokenizer_unigram_45" in printed and "45 pieces" in printed
    tokenizer = Tokenizer.load(corpus / "tokenizer_unigram_45")
    assert tokenizer.vocab_size == 45


def test_bad_input_ends_with_a_message(tmp_path: Path) -> None:
    table = write_tsv(tmp_path / "train.tsv", [(tmp_path / "missing.wav", "hello")])
    with pytest.raises(SystemExit, match=r"(?s)error: 1 unusable utterances.*missing.wav"):
        main(["data", "import", str(tmp_path / "c"), "--set", f"train={table}"])
    with pytest.raises(SystemExit, match="expected KEY=VALUE"):
        main(["data", "import", str(tmp_path / "c"), "--set", "train"])
    with pytest.raises(SystemExit, match=r"corpus\.json not found"):
        main(["data", "tokenizer", str(tmp_path / "nowhere")])
