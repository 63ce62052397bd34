from __future__ import annotations

import re
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


def test_bad_input_ends_with_a_message_and_exit_code_2(
    tmp_path: Path, spoken: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    """Bad input to a data command exits 2, as for every other command, with one line naming
    the file and the problem (no traceback)."""
    corpus = tmp_path / "corpus"
    good = write_tsv(tmp_path / "train.tsv", [(next(iter(spoken.values())), "hello")])
    assert main(["data", "import", str(corpus), "--set", f"train={good}"]) == 0
    capsys.readouterr()
    missing_audio = write_tsv(tmp_path / "m.tsv", [(tmp_path / "missing.wav", "hello")])
    malformed = tmp_path / "bad.tsv"
    malformed.write_text("just one column\n")
    not_json = tmp_path / "bad.jsonl"
    not_json.write_text("{oops\n")
    cases = [
        (
            ["data", "import", str(corpus), "--set", f"t={missing_audio}"],
            r"(?s)1 unusable.*missing",
        ),
        (["data", "import", str(corpus), "--set", f"t={tmp_path / 'nothing.tsv'}"], "no such"),
        (["data", "import", str(corpus), "--set", f"t={malformed}"], r"bad\.tsv:1: expected 2"),
        (["data", "import", str(corpus), "--set", f"t={not_json}"], r"bad\.jsonl:1: not valid"),
        (["data", "import", str(corpus), "--set", "train"], "expected KEY=VALUE"),
        (["data", "import", str(corpus), "--set", f"t={good}", "--role", "x=dev"], "roles given"),
        (["data", "tokenizer", str(tmp_path / "nowhere")], r"corpus\.json not found"),
        (["data", "tokenizer", str(corpus), "--sets", "nope"], "has no set 'nope'"),
        (["data", "features", str(corpus), "--sets", "nope"], "has no set 'nope'"),
        (["data", "shar", str(corpus), "--out", str(tmp_path / "s"), "--sets", "nope"], "no set"),
        (["data", "prepare", "wsj", str(tmp_path), str(corpus)], "unknown corpus 'wsj'"),
    ]
    for arguments, message in cases:
        assert main(arguments) == 2, arguments
        error = capsys.readouterr().err
        assert "omnirouter data: error: " in error, error
        assert re.search(message, error), (message, error)
        assert "Traceback" not in error
    assert not (corpus / "cuts_t.jsonl.gz").exists()


def test_bad_input_errors_are_ours(tmp_path: Path) -> None:
    """The library raises our own error types (which the CLI maps to exit code 2), each still
    the built-in type it refines."""
    from omnirouter.data.corpus import read_corpus_info
    from omnirouter.data.imports import import_source
    from omnirouter.errors import OmnirouterError

    with pytest.raises(OmnirouterError) as missing:
        import_source(tmp_path / "nothing.tsv", "test")
    assert isinstance(missing.value, FileNotFoundError)
    table = tmp_path / "t.tsv"
    table.write_text("a.wav\n")
    with pytest.raises(OmnirouterError) as malformed:
        import_source(table, "test")
    assert isinstance(malformed.value, ValueError)
    with pytest.raises(OmnirouterError, match=r"corpus\.json not found"):
        read_corpus_info(tmp_path)
    (tmp_path / "corpus.json").write_text('{"name": "c", "sets": [{"name": "dev", "role": "dev"}]}')
    with pytest.raises(OmnirouterError) as unknown:
        read_corpus_info(tmp_path).set("nope")
    assert isinstance(unknown.value, KeyError)
    assert str(unknown.value) == "corpus 'c' has no set 'nope'; it has ['dev']"  # not quoted
