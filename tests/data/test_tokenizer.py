from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import pickle
from pathlib import Path

import pytest

from omnirouter.data.tokenizer import (
    Tokenizer,
    TokenizerConfig,
    TokenizerError,
    normalize_transcript,
)
from omnirouter.model import BLANK_ID
from tests.data.conftest import SENTENCES

TEXTS = [sentence.capitalize() + "." for sentence in SENTENCES] * 4


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("It's  a   TEST.", "it's a test"),
        ("‘Don’t’ quote me", "don't quote me"),
        ("the students' books", "the students books"),
        ("a well-known [noise] fact <unk> {laugh} (inaudible) here", "a well known fact here"),
        ("Café déjà vu", "café déjà vu"),
        ("ＦＵＬＬ width", "full width"),
        ("room 101, floor 3", "room 101 floor 3"),
        ("under_score ... --- ?!", "under score"),
        ("   ", ""),
    ],
)
def test_normalize_transcript(raw: str, expected: str) -> None:
    assert normalize_transcript(raw) == expected
    assert normalize_transcript(expected) == expected  # idempotent


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return Tokenizer.train(TEXTS, tmp_path_factory.mktemp("tok"), vocab_size=60)


def test_round_trip_and_reserved_ids(tokenizer: Tokenizer) -> None:
    assert tokenizer.vocab_size == 60
    for text in TEXTS[: len(SENTENCES)]:
        ids = tokenizer.encode(text)
        assert ids and min(ids) >= 1 and max(ids) < tokenizer.vocab_size
        assert BLANK_ID not in ids
        assert tokenizer.decode(ids) == normalize_transcript(text)
    # Blanks in a decoded sequence are ignored.
    ids = tokenizer.encode("the lazy dog")
    assert tokenizer.decode([BLANK_ID, *ids, BLANK_ID]) == "the lazy dog"


def test_decoded_text_has_single_spaces(tokenizer: Tokenizer) -> None:
    """A CTC model may emit the word-boundary piece twice in a row or at either end; the text
    still has one space between words and none around them."""
    from omnirouter.evaluate.normalize import get_normalizer
    from omnirouter.evaluate.wer import Recognition, score_set

    boundary = tokenizer._processor.piece_to_id("\u2581")
    assert tokenizer._processor.id_to_piece(boundary) == "\u2581"  # a piece of its own
    the, dog = tokenizer.encode("the"), tokenizer.encode("dog")
    ids = [boundary, boundary, *the, boundary, BLANK_ID, boundary, *dog, boundary]
    assert tokenizer.decode(ids) == "the dog"
    # The WER and CER were blind to the spaces already: both normalisers give the same scores.
    for name in ("whisper-english", "none"):
        normalizer = get_normalizer(name)
        spaced = score_set("s", [Recognition("u", "the dog", "  the   dog ")], normalizer)
        single = score_set("s", [Recognition("u", "the dog", "the dog")], normalizer)
        assert (spaced.wer, spaced.cer) == (single.wer, single.cer) == (0.0, 0.0)


def test_unknown_characters(tokenizer: Tokenizer) -> None:
    assert tokenizer.unknown_characters("the fox") == ""
    # The training text has neither "ü" nor "ñ".
    assert tokenizer.unknown_characters("Über the piñata") == "ñü"
    assert 1 in tokenizer.encode("piñata")  # <unk>


def test_load_from_directory_file_and_pickle(tokenizer: Tokenizer) -> None:
    for loaded in (
        Tokenizer.load(tokenizer.model_path.parent),
        Tokenizer.load(tokenizer.model_path),
        pickle.loads(pickle.dumps(tokenizer)),
    ):
        assert loaded.vocab_size == tokenizer.vocab_size
        assert loaded.encode(TEXTS[0]) == tokenizer.encode(TEXTS[0])
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        Tokenizer.load(tokenizer.model_path.parent / "elsewhere")


def test_vocabulary_larger_than_the_text_supports_is_reduced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        tokenizer = Tokenizer.train(TEXTS, tmp_path, vocab_size=8000, model_type="bpe")
    assert 30 < tokenizer.vocab_size < 8000
    assert "vocab_size reduced from 8000" in caplog.text
    text = normalize_transcript(TEXTS[3])
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert (tmp_path / "tokenizer.json").is_file()


def test_vocabulary_smaller_than_the_alphabet_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="distinct characters"):
        Tokenizer.train(TEXTS, tmp_path, vocab_size=5)


def test_no_text_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="no non-empty transcripts"):
        Tokenizer.train(["", " [noise] "], tmp_path, vocab_size=50)


def test_config_checks_and_default_directory() -> None:
    assert TokenizerConfig(vocab_size=500).directory("corpus") == Path(
        "corpus/tokenizer_unigram_500"
    )
    assert TokenizerConfig(path="elsewhere").directory("corpus") == Path("elsewhere")
    with pytest.raises(ValueError, match="model_type"):
        TokenizerConfig(model_type="wordpiece")


def _train_in(out_dir: str) -> list[int]:
    return Tokenizer.train(SENTENCES * 1000, out_dir, vocab_size=40).encode(SENTENCES[0])


def test_two_processes_training_one_tokenizer_at_once_both_succeed(tmp_path: Path) -> None:
    """An experiment's side-by-side runs may train their corpus's tokenizer at the same time:
    neither may read or delete the other's files half-written."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:
        results = list(pool.map(_train_in, [str(tmp_path / "tok")] * 6))
    assert all(result == results[0] for result in results)
    assert sorted(path.name for path in (tmp_path / "tok").iterdir()) == [
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer.vocab",
    ]
    assert not [path for path in tmp_path.iterdir() if path.name != "tok"]  # no scratch left
