"""Word n-gram language models for beam-search decoding: building one, and loading it.

`build_lm` estimates a word n-gram with modified Kneser–Ney smoothing (Chen & Goodman 1998)
from text (a corpus's training text or transcripts, `build_corpus_lm`) normalised exactly as
the tokenizer sees it (`normalize_transcript`), with
KenLM's `lmplz`, then writes its binary with `build_binary`. `make install` builds both tools
from the `kenlm` source package into `.venv/bin`. An LM is a directory:

    <corpus>/lm/
      lm.arpa        the model in ARPA text form (log10 probabilities and back-offs)
      lm.bin         the same model in KenLM's binary form, what the decoder loads
      unigrams.txt   its words, one a line (the decoder tells in-vocabulary words by it)
      lm.json        how it was built: order, smoothing, toolkit, sources, n-gram counts
      tuning.json    decoder weights tuned on a dev set, per model and search (`lm tune`)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnirouter.data.tokenizer import UNK_PIECE, normalize_transcript
from omnirouter.errors import OmnirouterError
from omnirouter.jsonio import write_json

if TYPE_CHECKING:
    from omnirouter.data.tokenizer import Tokenizer

LM_DIR = "lm"  # <corpus>/lm unless told otherwise
ARPA_FILE = "lm.arpa"
BINARY_FILE = "lm.bin"
UNIGRAMS_FILE = "unigrams.txt"
INFO_FILE = "lm.json"
TUNING_FILE = "tuning.json"
TOOLS = ("lmplz", "build_binary")
# ARPA's sentence markers and unknown word: in every KenLM model, never words of a transcript.
SPECIAL_WORDS = frozenset({"<s>", "</s>", "<unk>"})
# An LM may hold a few words the tokenizer cannot spell (from an extra --text file, say);
# more than this share means it was built for other text (another script, upper case).
MAX_UNSPELLABLE_SHARE = 0.05


class LanguageModelError(OmnirouterError):
    """An LM that cannot be built or used; the message names the file."""


@dataclass(frozen=True)
class LmFiles:
    directory: Path

    @property
    def arpa(self) -> Path:
        return self.directory / ARPA_FILE

    @property
    def binary(self) -> Path:
        return self.directory / BINARY_FILE

    @property
    def unigrams(self) -> Path:
        return self.directory / UNIGRAMS_FILE

    @property
    def info(self) -> Path:
        return self.directory / INFO_FILE

    @property
    def tuning(self) -> Path:
        return self.directory / TUNING_FILE


@dataclass(frozen=True)
class LmInfo:
    order: int
    smoothing: str  # "modified Kneser-Ney" (with lmplz's fallback discounts when noted)
    toolkit: str  # the command that estimated it
    sources: tuple[str, ...]  # corpus sets and text files
    sentences: int
    words: int  # running words
    vocabulary: int  # distinct words (ARPA's <s>, </s>, <unk> not counted)
    ngram_counts: tuple[int, ...]  # n-grams of each order in the ARPA file, 1-grams first
    normalization: str = "omnirouter.data.tokenizer.normalize_transcript"


def find_tool(name: str) -> Path:
    """A KenLM program: beside this Python (where `make install` puts it), else on PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        raise LanguageModelError(
            f"KenLM's {name} was not found beside {sys.executable} or on PATH: run `make install`"
        )
    return Path(found)


def normalized_sentences(texts: Iterable[str]) -> Iterable[str]:
    """The non-empty transcripts in the tokenizer's normalised form."""
    for text in texts:
        normalized = normalize_transcript(text)
        if normalized:
            yield normalized


def build_lm(
    texts: Iterable[str],
    out_dir: str | Path,
    order: int = 3,
    sources: Sequence[str] = (),
    memory: str = "10%",
) -> LmInfo:
    """Estimate an `order`-gram LM of the normalised `texts` into `out_dir` (see the module
    docstring). Built in a scratch directory and moved into place only when complete, so a
    failure leaves `out_dir` as it was."""
    if not 1 <= order <= 6:  # KenLM's default KENLM_MAX_ORDER
        raise LanguageModelError(f"order {order}: KenLM supports orders 1 to 6")
    out_dir = Path(out_dir)
    lmplz, build_binary = (find_tool(name) for name in TOOLS)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as scratch:
        files = LmFiles(Path(scratch) / "lm")
        files.directory.mkdir()
        text_path = Path(scratch) / "text.txt"
        sentences = words = 0
        with text_path.open("w") as stream:
            for sentence in normalized_sentences(texts):
                stream.write(sentence + "\n")
                sentences += 1
                words += sentence.count(" ") + 1
        if sentences == 0:
            raise LanguageModelError(f"no non-empty transcripts to build {out_dir} from")
        # --discount_fallback: a small text may lack the counts of counts that modified
        # Kneser-Ney's discounts are estimated from; lmplz then uses its fixed fallback.
        estimate = [str(lmplz), "-o", str(order), "--text", str(text_path)]
        estimate += ["--arpa", str(files.arpa), "-S", memory, "-T", scratch, "--discount_fallback"]
        log = _run(estimate, out_dir)
        _run([str(build_binary), str(files.arpa), str(files.binary)], out_dir)
        counts = arpa_counts(files.arpa)
        vocabulary = sorted(arpa_unigrams(files.arpa))
        files.unigrams.write_text("".join(word + "\n" for word in vocabulary))
        fallback = "fallback" in log.lower()
        info = LmInfo(
            order=order,
            smoothing="modified Kneser-Ney" + (" (lmplz fallback discounts)" if fallback else ""),
            toolkit=f"KenLM lmplz -o {order} --discount_fallback",
            sources=tuple(sources),
            sentences=sentences,
            words=words,
            vocabulary=len(vocabulary),
            ngram_counts=counts,
        )
        write_json(files.info, info)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        files.directory.rename(out_dir)
    return info


def _run(command: list[str], out_dir: Path) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise LanguageModelError(
            f"{Path(command[0]).name} failed building {out_dir} (exit {result.returncode}):\n{tail}"
        )
    return result.stderr


def arpa_counts(path: Path) -> tuple[int, ...]:
    """The n-gram counts of the ARPA header (`ngram N=count`)."""
    counts = []
    with path.open() as stream:
        for line in stream:
            line = line.strip()
            if line.startswith("ngram ") and "=" in line:
                counts.append(int(line.split("=", 1)[1]))
            elif line.startswith("\\1-grams:"):
                break
    return tuple(counts)


def arpa_unigrams(path: Path) -> set[str]:
    """The words of an ARPA file's 1-grams, without <s>, </s> and <unk>."""
    words: set[str] = set()
    with path.open() as stream:
        inside = False
        for line in stream:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and (not line or line.startswith("\\")):
                break
            elif inside:
                fields = line.split("\t")
                if len(fields) >= 2 and fields[1] not in SPECIAL_WORDS:
                    words.add(fields[1])
    return words


def build_corpus_lm(
    corpus_dir: str | Path,
    out_dir: str | Path | None = None,
    order: int = 3,
    sets: Sequence[str] | None = None,
    text_files: Sequence[str | Path] = (),
    corpus_text: bool = True,
) -> tuple[LmInfo, LmFiles]:
    """`omnirouter lm build`: an LM of a corpus's text, in <corpus>/lm unless `out_dir` says
    otherwise. Its text: a synthetic corpus's training text (every sentence its training sets
    could have read, `TRAINING_TEXT_FILE`) unless `corpus_text` is False; the transcripts of
    `sets` (default: the training set, when there is no training text); and any extra text
    files (one sentence a line)."""
    from omnirouter.data.manifests import cut_text, read_set_cuts
    from omnirouter.data.synth.text import TRAINING_TEXT_FILE

    training_text = Path(corpus_dir) / TRAINING_TEXT_FILE
    read_training_text = corpus_text and training_text.is_file()
    files = [training_text] if read_training_text else []
    files += [Path(text_file) for text_file in text_files]
    for text_file in files:
        if not text_file.is_file():
            raise LanguageModelError(f"no text file {text_file}")
    if sets is None:
        sets = () if read_training_text else ("train",)
    out = Path(out_dir) if out_dir is not None else Path(corpus_dir) / LM_DIR
    cuts = read_set_cuts(corpus_dir, list(sets)) if sets else []

    def texts() -> Iterable[str]:
        yield from (cut_text(cut) for cut in cuts)
        for text_file in files:
            with text_file.open(encoding="utf-8") as stream:
                yield from stream

    sources = [f"{corpus_dir}:{name}" for name in sets] + [str(path) for path in files]
    return build_lm(texts(), out, order, sources), LmFiles(out)


def lm_files(path: str | Path) -> LmFiles:
    """The files of an LM given as its directory or as one of its files."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        return LmFiles(path)
    return LmFiles(path.parent)


@dataclass(frozen=True)
class LoadedLm:
    model_path: Path  # the file loaded: lm.bin, else lm.arpa
    unigrams: tuple[str, ...]
    files: LmFiles
    model: Any = field(compare=False, repr=False)  # the `kenlm.Model`


def load_lm(path: str | Path, tokenizer: Tokenizer | None = None) -> LoadedLm:
    """Check an LM and read its vocabulary; `kenlm` opens it here once, so a missing, corrupt
    or foreign file fails now with its name, before any decoding. With `tokenizer`, the LM's
    words must be spellable from the tokenizer's pieces (see MAX_UNSPELLABLE_SHARE)."""
    import kenlm

    given = Path(path)
    files = lm_files(given)
    if given.is_file():
        model_path = given
    else:
        candidates = [files.binary, files.arpa]
        model_path = next((file for file in candidates if file.is_file()), files.binary)
        if not model_path.is_file():
            raise LanguageModelError(
                f"no language model at {given} (looked for {files.binary.name} and "
                f"{files.arpa.name}): build one with `omnirouter lm build`"
            )
    try:
        model = kenlm.Model(str(model_path))
    except (OSError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise LanguageModelError(
            f"{model_path} is not a readable KenLM binary or ARPA file: {first_line}"
        ) from None
    if files.unigrams.is_file():
        unigrams = tuple(word for word in files.unigrams.read_text().split("\n") if word)
    elif model_path.suffix == ".arpa":
        unigrams = tuple(sorted(arpa_unigrams(model_path)))
    else:
        raise LanguageModelError(f"{files.unigrams} is missing: the decoder needs the LM's words")
    if not unigrams:
        raise LanguageModelError(f"{files.unigrams} lists no words")
    if tokenizer is not None:
        check_vocabulary(unigrams, tokenizer, model_path)
    return LoadedLm(model_path, unigrams, files, model)


def check_vocabulary(words: Sequence[str], tokenizer: Tokenizer, where: Path) -> None:
    """Refuse an LM for other text: too many of its words are not in the tokenizer's
    normalised form, or hold characters none of the tokenizer's pieces has."""
    characters = {
        character
        for piece in tokenizer.pieces()[1:]
        if piece != UNK_PIECE
        for character in piece.replace("▁", "")
    }
    unfit = [
        word for word in words if normalize_transcript(word) != word or not set(word) <= characters
    ]
    if len(unfit) > MAX_UNSPELLABLE_SHARE * len(words):
        examples = ", ".join(repr(word) for word in unfit[:5])
        raise LanguageModelError(
            f"{where}: {len(unfit)} of the LM's {len(words)} words do not fit the tokenizer "
            f"{tokenizer.model_path} (not normalised, or characters it has no piece for: "
            f"{examples}); build the LM from this corpus's text with `omnirouter lm build`"
        )
