"""Sentences to speak: read the text sources, split them into sentences, keep the plain ones.

A kept sentence is what every engine reads the same way and what the transcript says: English
words only (no digits, acronyms, symbols or ellipses), 5–25 words, starting with a capital
letter and ending with `.`, `!` or `?`. Fortunes and Devil's Dictionary sentences are split into
train / dev / test by a hash of the sentence, so the split of a sentence never depends on which
other sentences exist.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

from omnirouter.data.synth.config import Role, SynthConfig, TextConfig, TextSource, TextSplit

# In a synthetic corpus: every sentence the training sets could have read, one a line (more
# text than their transcripts, and none of a dev or test set's), for `omnirouter lm build`.
TRAINING_TEXT_FILE = "training_text.txt"

# A sentence ends at . ! or ? followed by space and a capital letter or an opening quote.
_SENTENCE_END = re.compile(r"([.!?][\"')\]]*)\s+(?=[\"'(\[]*[A-Z])")
# Abbreviations after which a full stop does not end the sentence.
_ABBREVIATIONS = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Col|Capt|Lt|Sgt|Rev|Mt|Ft|Gov|Sen|Rep|vs|etc|Inc|Co|"
    r"Ltd|[A-Z])\.$"
)
_ATTRIBUTION = re.compile(r"^\s*(?:--|—|~)")  # "\t\t-- Mark Twain" lines under a fortune
# Letters, spaces, light punctuation and quotes; anything else (digits, symbols) rejects a sentence.
_ALLOWED = re.compile(r"[A-Za-z ,.;:!?'\"`“”‘’—–-]+")
_QUOTES = str.maketrans("", "", '"`“”‘’')
_SINGLE_QUOTE = re.compile(r"''|(?<![A-Za-z])'|'(?![A-Za-z])")  # but not an apostrophe
_DASH = re.compile(r" ?(?:--+|—|–) ?")  # spaces are already single
# Words of letters, optionally joined by single apostrophes or hyphens, light punctuation after
# a word, and a final . ! or ?.
_WORD = r"[A-Za-z]+(?:['-][A-Za-z]+)*"
_PLAIN = re.compile(rf"(?=[A-Z])(?:{_WORD}[,;:]? )*{_WORD}[.!?]")
# Two capitals in a row (acronyms, shouting): engines spell some of them out.
_CAPITALS = re.compile(r"[A-Z]['-]?[A-Z]")
_VERSE_REFERENCE = re.compile(r"^\S+\d+:\d+\s+")  # "Ge1:1 In the beginning ..."
_SMALL_CAPITALS = ("LORD", "GOD", "JEHOVAH", "JAH")


def split_sentences(passage: str) -> list[str]:
    """Sentences of a passage (whitespace collapsed); abbreviations such as `Mr.` do not split."""
    passage = " ".join(passage.split())
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(passage):
        candidate = passage[start : match.end(1)]
        if _ABBREVIATIONS.search(candidate.split(" ")[-1]):
            continue
        sentences.append(candidate)
        start = match.end()
    sentences.append(passage[start:])
    return [sentence.strip() for sentence in sentences if sentence.strip()]


def clean_sentence(sentence: str, min_words: int = 5, max_words: int = 25) -> str | None:
    """The sentence with quotes removed and dashes made commas, or None if it is not plain."""
    if not _ALLOWED.fullmatch(sentence) or _CAPITALS.search(sentence):
        return None
    sentence = sentence.translate(_QUOTES)
    if "'" in sentence:
        sentence = _SINGLE_QUOTE.sub("", sentence)
    if "-" in sentence or "—" in sentence or "–" in sentence:
        sentence = _DASH.sub(", ", sentence)
    sentence = " ".join(sentence.split()).replace(" ,", ",")
    if not min_words <= sentence.count(" ") + 1 <= max_words or not _PLAIN.fullmatch(sentence):
        return None
    return sentence


def plain_sentences(passages: Iterable[str], min_words: int, max_words: int) -> Iterator[str]:
    for passage in passages:
        for sentence in split_sentences(passage):
            cleaned = clean_sentence(sentence, min_words, max_words)
            if cleaned is not None:
                yield cleaned


def read_fortunes(directory: str | Path) -> list[str]:
    """Every fortune (`%`-separated entry) of the files in `directory`, minus attributions."""
    directory = Path(directory)
    # Each collection is a text file beside its index (.dat) and a UTF-8 alias (.u8 symlink).
    files = sorted(
        path
        for path in directory.iterdir()
        if path.is_file() and not path.is_symlink() and path.suffix not in (".dat", ".u8")
    )
    if not files:
        raise FileNotFoundError(f"no fortune files in {directory} (Debian package `fortunes`)")
    fortunes: list[str] = []
    for path in files:
        entries = path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
        for entry in entries:
            lines = [line for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
            fortunes.append(" ".join(lines))
    return fortunes


# "ABSTAINER, n.  A weak person ..." and "ACADEMY, n.  [from {ACADEME}]  A modern school ...":
# the headword and its part of speech open an entry of the Devil's Dictionary.
_HEADWORD = re.compile(r"^[A-Z][A-Z'. -]*, (?:[a-z]+\.)+(?:,? ?(?:and )?(?:[a-z]+\.)+)*\s+")
_BRACKETED = re.compile(r"\[[^\]]*\]|\{|\}")


def read_dictd_prose(path: str | Path) -> list[str]:
    """The prose of a dictd dictionary file (`.dict.dz`, gzip, or plain): one passage per
    paragraph, with the entry's headword and part of speech, bracketed cross-references and
    indented lines (verse, attributions) removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no dictionary at {path} (Debian package `dict-devil`)")
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8", "replace")
    passages: list[str] = []
    for paragraph in text.split("\n\n"):
        lines = [line for line in paragraph.splitlines() if line and not line[0].isspace()]
        passage = _BRACKETED.sub(" ", _HEADWORD.sub("", " ".join(lines)))
        if passage.strip():
            passages.append(passage)
    return passages


def read_bible() -> list[str]:
    """Every verse of the King James Bible, through the `bible` program of Debian `bible-kjv`."""
    program = shutil.which("bible")
    if program is None:
        raise FileNotFoundError("the `bible` program is missing (Debian package `bible-kjv`)")
    listing = subprocess.run(
        [program, "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True
    ).stdout
    # Small capitals in print (LORD, GOD) are plain words when spoken.
    for word in _SMALL_CAPITALS:
        listing = listing.replace(word, word.capitalize())
    return [_VERSE_REFERENCE.sub("", line) for line in listing.splitlines() if line.strip()]


@functools.cache
def load_sentences(source: TextSource, config: TextConfig) -> tuple[str, ...]:
    """The plain sentences of a source, deduplicated (ignoring case) and sorted."""
    if source is TextSource.fortunes:
        passages = read_fortunes(config.fortunes_dir)
    elif source is TextSource.devil:
        passages = read_dictd_prose(config.devil_path)
    else:
        passages = read_bible()
    unique: dict[str, str] = {}
    for sentence in plain_sentences(passages, config.min_words, config.max_words):
        unique.setdefault(sentence.lower(), sentence)
    return tuple(sorted(unique.values()))


def split_of(sentence: str, config: TextConfig) -> TextSplit:
    """The split a sentence belongs to, from a hash of its lower-cased text (stable everywhere)."""
    digest = hashlib.sha1(sentence.lower().encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < config.dev_fraction:
        return TextSplit.dev
    if position < config.dev_fraction + config.test_fraction:
        return TextSplit.test
    return TextSplit.train


def sentence_pool(source: TextSource, split: TextSplit, config: TextConfig) -> tuple[str, ...]:
    """The sentences of `source` in `split` (all of them for `TextSplit.all`), sorted."""
    sentences = load_sentences(source, config)
    if split is TextSplit.all:
        return sentences
    return tuple(sentence for sentence in sentences if split_of(sentence, config) is split)


def training_text(config: SynthConfig) -> list[str]:
    """The sentences of `TRAINING_TEXT_FILE`: the whole split (train, or all) of the source
    each training set reads, each source and split once, in configuration order, less any
    sentence a dev or test set may read (a source read whole by both, say)."""
    synthesised = [set_config for set_config in config.sets if not set_config.is_effect_set]

    def pools(training: bool) -> dict[tuple[TextSource, TextSplit], None]:
        return {
            (set_config.text_source, set_config.text_split): None
            for set_config in synthesised
            if (set_config.role is Role.train) == training
        }

    held_out: set[str] = set()
    for source, split in pools(training=False):
        held_out.update(sentence_pool(source, split, config.text))
    sentences: dict[str, None] = {}
    for source, split in pools(training=True):
        pool = sentence_pool(source, split, config.text)
        sentences.update(dict.fromkeys(sentence for sentence in pool if sentence not in held_out))
    return list(sentences)


def write_training_text(config: SynthConfig, corpus_dir: str | Path) -> Path:
    """Write `TRAINING_TEXT_FILE` into the corpus, one sentence a line."""
    from omnirouter.jsonio import write_text

    text = "".join(f"{sentence}\n" for sentence in training_text(config))
    return write_text(Path(corpus_dir) / TRAINING_TEXT_FILE, text)
