"""Transcripts to CTC targets: text normalisation and a sentencepiece word-piece vocabulary.

Token id 0 is the CTC blank (sentencepiece's pad piece, written `<blk>`), id 1 is `<unk>`, and
there is no begin/end-of-sentence piece, so every id `encode` returns is >= 1 and `vocab_size`
(blank included) is the model's output size. The vocabulary is trained on the normalised
training transcripts (paper §V-B: 8k word pieces; small corpora support fewer, see `train`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from omnirouter.data.errors import DataError, DataFileNotFoundError

log = logging.getLogger(__name__)

BLANK_PIECE = "<blk>"
UNK_PIECE = "<unk>"
UNK_ID = 1
MODEL_FILE = "tokenizer.model"
INFO_FILE = "tokenizer.json"

# Non-speech annotations such as "[noise]", "<unk>", "{laugh}" or "(inaudible)" are not words.
_ANNOTATION = re.compile(r"\[[^\]]*\]|<[^>]*>|\{[^}]*\}|\([^)]*\)")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "ʼ": "'", "´": "'"})
_NOT_WORD = re.compile(r"[^\w']+|_")  # \w: letters and digits of any script (and "_")
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def normalize_transcript(text: str) -> str:
    """The form of a transcript that training targets are made from.

    Unicode NFKC; annotations in brackets dropped; lower-case; letters and digits of any script
    kept; apostrophes kept only between two word characters ("don't", "o'clock"), so quotes go;
    hyphens and all other punctuation become word boundaries; whitespace collapsed. Numbers stay
    as written. Evaluation applies the Whisper English normaliser to references and hypotheses,
    which also maps spelled-out and written numbers to one form.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    text = _ANNOTATION.sub(" ", text).lower()
    text = _NOT_WORD.sub(" ", text)
    text = _LOOSE_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())


class TokenizerError(DataError):
    """A vocabulary that cannot be trained, or text it cannot represent."""


@dataclass(frozen=True)
class TokenizerConfig:
    # Pieces, blank and <unk> included; reduced (with a warning) when the text cannot fill it.
    vocab_size: int = 8000
    model_type: str = "unigram"  # sentencepiece algorithm: "unigram" or "bpe"
    path: str | None = (
        None  # a trained tokenizer directory; None = <corpus_dir>/tokenizer_<type>_<size>
    )
    max_sentences: int = 2_000_000  # training transcripts sampled (seeded) for the vocabulary

    def __post_init__(self) -> None:
        if self.model_type not in ("unigram", "bpe"):
            raise DataError(f"tokenizer.model_type={self.model_type!r}: use unigram or bpe")
        if self.vocab_size < 3:
            raise DataError("tokenizer.vocab_size must be >= 3 (blank, <unk>, one piece)")
        if self.max_sentences < 1:
            raise DataError(f"tokenizer.max_sentences must be >= 1, got {self.max_sentences}")

    def directory(self, corpus_dir: str | Path) -> Path:
        if self.path is not None:
            return Path(self.path)
        return Path(corpus_dir) / f"tokenizer_{self.model_type}_{self.vocab_size}"


class Tokenizer:
    """A trained sentencepiece model with the blank at id 0; see the module docstring."""

    def __init__(self, model_path: str | Path) -> None:
        self.model_path = Path(model_path)
        self._processor = spm.SentencePieceProcessor(model_file=str(self.model_path))
        if self._processor.pad_id() != 0 or self._processor.id_to_piece(0) != BLANK_PIECE:
            raise TokenizerError(f"{self.model_path}: id 0 is not the blank piece {BLANK_PIECE!r}")
        pieces = (self._processor.id_to_piece(i) for i in range(self.vocab_size))
        self._single_characters = frozenset(piece for piece in pieces if len(piece) == 1)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """From a `tokenizer.model` file or the directory holding one."""
        path = Path(path)
        model_path = path / MODEL_FILE if path.is_dir() else path
        if not model_path.is_file():
            raise DataFileNotFoundError(
                f"no tokenizer at {model_path}: train one with `omnirouter data tokenizer`"
            )
        return cls(model_path)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        out_dir: str | Path,
        vocab_size: int,
        model_type: str = "unigram",
        max_sentences: int = 2_000_000,
        seed: int = 0,
        details: Mapping[str, object] | None = None,
    ) -> Tokenizer:
        """Train on the normalised `texts`; store tokenizer.model and tokenizer.json in out_dir
        (with `details` added to the json: what the texts were, say).

        When the text holds fewer pieces than `vocab_size`, the size is reduced to the largest
        the text supports and a warning says so; fewer than its distinct characters is an error.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        # Trained in a scratch folder of its own and moved in file by file, the model last: two
        # runs that train the same corpus's tokenizer at once (an experiment's side-by-side
        # runs) never read or delete each other's half-written files.
        with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.", dir=out_dir.parent) as tmp:
            scratch = Path(tmp)
            sample_path = scratch / "training_text.txt"
            num_sentences = _write_sample(texts, sample_path, max_sentences, seed)
            if num_sentences == 0:
                raise TokenizerError(f"no non-empty transcripts to train a tokenizer in {out_dir}")
            size = _train_clamped(sample_path, scratch / MODEL_FILE, vocab_size, model_type)
            info = {
                "model_type": model_type,
                "requested_vocab_size": vocab_size,
                "vocab_size": size,
                "training_sentences": num_sentences,
                "blank_id": 0,
                "unk_id": UNK_ID,
                "normalization": "omnirouter.data.tokenizer.normalize_transcript",
                **(details or {}),
            }
            (scratch / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
            for name in (Path(MODEL_FILE).with_suffix(".vocab").name, INFO_FILE, MODEL_FILE):
                os.replace(scratch / name, out_dir / name)
        return cls(out_dir / MODEL_FILE)

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """Token ids (all >= 1) of the normalised text; unknown characters become <unk> (1)."""
        return self._processor.encode(normalize_transcript(text), out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids; blanks (0) are ignored. Whitespace is collapsed and stripped: a
        CTC model may emit the word-boundary piece twice in a row, or at either end."""
        return " ".join(self._processor.decode([int(i) for i in ids if int(i) != 0]).split())

    def pieces(self) -> list[str]:
        """Every piece by id: the blank at 0, <unk> at 1, then the word pieces (a leading
        `▁` marks the start of a word)."""
        return [self._processor.id_to_piece(i) for i in range(self.vocab_size)]

    def unknown_characters(self, text: str) -> str:
        """Characters of the normalised text that no piece covers (they would become <unk>)."""
        characters = set(normalize_transcript(text).replace(" ", ""))
        return "".join(sorted(characters - self._single_characters))

    def __getstate__(self) -> dict[str, object]:
        # DataLoader workers receive the tokenizer by pickling; the model file is reloaded there.
        return {"model_path": self.model_path}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["model_path"])  # type: ignore[misc, arg-type]


def _write_sample(texts: Iterable[str], path: Path, max_sentences: int, seed: int) -> int:
    """Reservoir-sample up to `max_sentences` normalised, non-empty texts into `path`."""
    rng = random.Random(seed)
    kept: list[str] = []
    seen = 0
    for text in texts:
        normalized = normalize_transcript(text)
        if not normalized:
            continue
        seen += 1
        if len(kept) < max_sentences:
            kept.append(normalized)
        else:
            slot = rng.randrange(seen)
            if slot < max_sentences:
                kept[slot] = normalized
    path.write_text("".join(line + "\n" for line in kept))
    return len(kept)


def _train_clamped(text_path: Path, model_path: Path, vocab_size: int, model_type: str) -> int:
    try:
        _train_sentencepiece(text_path, model_path, vocab_size, model_type)
        return vocab_size
    except RuntimeError as error:
        message = str(error)
        too_high = re.search(
            r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", message
        )
        too_low = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
        if too_low:
            raise TokenizerError(
                f"vocab_size={vocab_size} cannot hold the {too_low.group(1)} distinct characters "
                "of the transcripts plus blank and <unk>; use a larger vocab_size"
            ) from None
        if not too_high:
            raise TokenizerError(f"sentencepiece failed on {text_path}: {message}") from None
    supported = int(too_high.group(1))
    log.warning(
        "the training transcripts support at most %d word pieces; vocab_size reduced from %d",
        supported,
        vocab_size,
    )
    _train_sentencepiece(text_path, model_path, supported, model_type)
    return supported


def _train_sentencepiece(
    text_path: Path, model_path: Path, vocab_size: int, model_type: str
) -> None:
    spm.SentencePieceTrainer.train(
        input=str(text_path),
        model_prefix=str(model_path.with_suffix("")),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,  # every character of the training text gets a piece
        normalization_rule_name="identity",  # `normalize_transcript` already did it
        pad_id=0,
        pad_piece=BLANK_PIECE,
        unk_id=UNK_ID,
        unk_piece=UNK_PIECE,
        bos_id=-1,
        eos_id=-1,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
