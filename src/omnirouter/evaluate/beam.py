"""CTC beam search with a word n-gram LM: over the LM's words (flashlight-text), or open.

With an LM the search is, by default, restricted to the LM's words (`lexicon_search.py`,
flashlight-text's C++ lexicon decoder): the usual setup of wav2letter, torchaudio and fairseq,
and on the demo's models both the more accurate and the faster (docs/lm-decoding.md). With
`lexicon=False`, or without an LM, it is the open-vocabulary prefix search below.

The open search's labels are the tokenizer's pieces by id, the blank (id 0) written "" as
pyctcdecode expects; a leading `▁` starts a word (sentencepiece's marker) and `<unk>` is the
word `⁇`. The search is pyctcdecode's, with its reading of word pieces corrected
(`prefix_search.py`). A hypothesis scores

    log P_ctc(prefix | audio) + lm_weight · ln P_lm(words) + word_score · |words|

(Hannun et al. 2014; pyctcdecode's alpha and beta), with words outside the LM's unigram list
penalised further (pyctcdecode's unk_score_offset). Beams that share a prefix and its last
label are merged by summing their probabilities, so with no LM and a wide beam the best
hypothesis is the label sequence with the largest sum over its CTC paths; with beam size 1 it
is the greedy transcript (one parent beam: nothing to merge, the best label wins each step).

Utterances are decoded in parallel by a pool of forked processes (pyctcdecode keeps the LM in
a class-level table that forked workers inherit; a spawned pool would decode serially).

Shape legend: T output steps, V vocabulary (blank included).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.pool
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from omnirouter.data.tokenizer import UNK_PIECE
from omnirouter.evaluate.lexicon_search import (
    LexiconSearch,
    LexiconSettings,
    lexicon_spellings,
    longest_match_speller,
)
from omnirouter.evaluate.lm import LmFiles, LoadedLm, load_lm
from omnirouter.jsonio import read_json

if TYPE_CHECKING:
    from omnirouter.data.tokenizer import Tokenizer

logger = logging.getLogger(__name__)


# log10 probability added to a word outside the LM's vocabulary, on top of KenLM's <unk>
# (pyctcdecode's default); weighted by lm_weight like every LM score.
UNKNOWN_WORD_LOG10 = -10.0


@dataclass(frozen=True)
class BeamConfig:
    beam_size: int = 64  # hypotheses kept after each step
    lm_weight: float = 0.5  # α: scale of the LM's natural-log probability
    word_score: float = 0.0  # β: added per word (counters the LM's pull to short outputs)
    # The open search's pruning (the lexicon search has its own: lexicon_search.BEAM_THRESHOLD).
    beam_prune_logp: float = -10.0  # drop hypotheses this far (log) below the best
    token_min_logp: float = -5.0  # labels below this log-probability at a step are not tried
    processes: int = 0  # decoding processes; 0: one per core
    lexicon: bool = True  # with an LM: output only the LM's words (False: any spelling)

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam size must be at least 1, got {self.beam_size}")
        if self.processes < 0:
            raise ValueError(f"processes must be >= 0, got {self.processes}")

    def num_processes(self) -> int:
        return self.processes or os.cpu_count() or 1


@dataclass
class DecodeStats:
    """Wall time of the beam search alone, over every `decode` call."""

    seconds: float = 0.0
    utterances: int = 0
    processes: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class BeamRequest:
    """What a command asked of the beam search; None: tuned for the model, else default."""

    lm: str | Path | None = None  # an LM directory or file; None: <corpus>/lm
    beam_size: int | None = None
    lm_weight: float | None = None
    word_score: float | None = None
    lexicon: bool = True  # the LM's words only (False: open vocabulary)


def search_name(lexicon: bool) -> str:
    return "lexicon" if lexicon else "open"


def model_key(experiment_dir: str | Path, files: LmFiles) -> str:
    """The model's key in the LM's tuning.json: its experiment directory relative to the LM's,
    so that a corpus and experiments copied or cloned together keep their tuning."""
    return os.path.relpath(Path(experiment_dir).resolve(), files.directory.resolve())


def tuned_values(
    files: LmFiles, experiment_dir: str | Path | None, lexicon: bool = True
) -> dict | None:
    """What `lm tune` stored for this model and search beside the LM, or None."""
    if experiment_dir is None or not files.tuning.is_file():
        return None
    stored = read_json(files.tuning, "LM tuning file").get(model_key(experiment_dir, files), {})
    return stored.get(search_name(lexicon)) if isinstance(stored, dict) else None


def beam_config(
    files: LmFiles,
    experiment_dir: str | Path | None,
    beam_size: int | None = None,
    lm_weight: float | None = None,
    word_score: float | None = None,
    lexicon: bool = True,
) -> BeamConfig:
    """The given values, else those tuned for this model and search (tuning.json), else the
    defaults."""
    tuned = tuned_values(files, experiment_dir, lexicon) or {}
    if tuned:
        logger.info("using the LM weights tuned on %s (%s)", tuned["set_name"], files.tuning)
    elif lm_weight is None or word_score is None:
        logger.info(
            "no %s-search tuning for this model in %s: run `omnirouter lm tune`",
            search_name(lexicon),
            files.tuning,
        )
    defaults = BeamConfig()

    def pick(name: str, given: float | None) -> float:
        return given if given is not None else tuned.get(name, getattr(defaults, name))

    return BeamConfig(
        beam_size=int(pick("beam_size", beam_size)),
        lm_weight=pick("lm_weight", lm_weight),
        word_score=pick("word_score", word_score),
        lexicon=lexicon,
    )


def _worker_signals() -> None:
    """In a decoding worker: the default SIGTERM (the CLI's handler, inherited through fork,
    would raise in the worker and could hang it on its way out when the pool ends it) and no
    SIGINT (Ctrl-C reaches the parent, which ends the pool)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def decoder_labels(pieces: Sequence[str]) -> list[str]:
    """pyctcdecode's labels of the tokenizer's pieces: the blank (id 0) as ""."""
    labels = ["", *pieces[1:]]
    if UNK_PIECE not in labels:
        raise ValueError(f"the tokenizer has no {UNK_PIECE} piece")
    return labels


# In a forked decoding worker: the lexicon search and the arrays of the `decode` call that
# started it, handed over by the pool's initializer (a flashlight decoder cannot be pickled;
# a forked worker's initializer arguments are inherited, not pickled).
_WORKER_JOB: tuple[LexiconSearch, list[np.ndarray]] | None = None


def _start_lexicon_worker(search: LexiconSearch, arrays: list[np.ndarray]) -> None:
    global _WORKER_JOB
    _worker_signals()
    _WORKER_JOB = (search, arrays)


def _decode_in_worker(index: int) -> str:
    assert _WORKER_JOB is not None
    search, arrays = _WORKER_JOB
    return search.decode(arrays[index])[0]


class BeamDecoder:
    """Beam search over the tokenizer's pieces, with an LM or without (`lm=None`); with an LM
    and `config.lexicon`, over the LM's words only (`spell`: a word's piece ids, by default the
    longest pieces that spell it)."""

    def __init__(
        self,
        pieces: Sequence[str],
        lm: LoadedLm | None,
        config: BeamConfig = BeamConfig(),
        spell: Callable[[str], list[int]] | None = None,
    ) -> None:
        self.config = config
        self.lm = lm
        self.stats = DecodeStats()
        self.vocab_size = len(pieces)
        self._lexicon: LexiconSearch | None = None
        self._decoder = None
        if lm is not None and config.lexicon:
            spellings = lexicon_spellings(
                lm.unigrams, spell or longest_match_speller(pieces), len(pieces)
            )
            self._lexicon = LexiconSearch(len(pieces), lm, spellings)
            self._configure_lexicon()
            return
        from omnirouter.evaluate.prefix_search import (
            PieceBeamSearch,
            WeightedLanguageModel,
            piece_alphabet,
        )

        language_model = None
        if lm is not None:
            language_model = WeightedLanguageModel(
                lm.model,
                list(lm.unigrams),
                alpha=float(config.lm_weight),
                beta=float(config.word_score),
                unk_score_offset=UNKNOWN_WORD_LOG10,
            )
        self._decoder = PieceBeamSearch(piece_alphabet(decoder_labels(pieces)), language_model)

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Tokenizer, lm_path: str | Path | None, config: BeamConfig = BeamConfig()
    ) -> BeamDecoder:
        lm = None if lm_path is None else load_lm(lm_path, tokenizer)
        return cls(tokenizer.pieces(), lm, config, spell=tokenizer.encode)

    @property
    def search(self) -> str:
        """ "lexicon" (the LM's words only) or "open" (any spelling)."""
        return search_name(self._lexicon is not None)

    def _configure_lexicon(self) -> None:
        assert self._lexicon is not None
        self._lexicon.configure(
            LexiconSettings(self.config.beam_size, self.config.lm_weight, self.config.word_score)
        )

    def set_weights(self, lm_weight: float, word_score: float) -> None:
        """Change α and β without reloading the LM (dev-set tuning)."""
        self.config = replace(self.config, lm_weight=lm_weight, word_score=word_score)
        if self._lexicon is not None:
            self._configure_lexicon()
        elif self.lm is not None:
            self._decoder.reset_params(alpha=float(lm_weight), beta=float(word_score))

    def decode(self, log_probs: Sequence[np.ndarray], processes: int | None = None) -> list[str]:
        """The best transcript of each utterance's (T, V) log-probabilities (padding removed),
        decoded by `processes` forked workers (default: the config's)."""
        arrays = [np.asarray(item, dtype=np.float32) for item in log_probs]
        for array in arrays:
            if array.ndim != 2 or array.shape[1] != self.vocab_size:
                raise ValueError(
                    f"log-probs of shape {array.shape} do not fit a vocabulary of "
                    f"{self.vocab_size} labels"
                )
        if not arrays:
            return []
        started = time.perf_counter()
        # An utterance with no output steps has no transcript; the searches are not asked.
        spoken = [index for index, array in enumerate(arrays) if len(array)]
        searched = [arrays[index] for index in spoken]
        workers = min(processes or self.config.num_processes(), max(1, len(searched)))
        if "fork" not in multiprocessing.get_all_start_methods():
            workers = 1
        if self._lexicon is not None:
            found = self._decode_lexicon(searched, workers)
        else:
            found = self._decode_open(searched, workers)
        texts = [""] * len(arrays)
        for index, text in zip(spoken, found, strict=True):
            texts[index] = text
        self.stats.seconds += time.perf_counter() - started
        self.stats.utterances += len(arrays)
        self.stats.processes.add(workers)
        return texts

    def _decode_lexicon(self, arrays: list[np.ndarray], workers: int) -> list[str]:
        assert self._lexicon is not None
        if workers == 1:
            return [self._lexicon.decode(array)[0] for array in arrays]
        start = (_start_lexicon_worker, (self._lexicon, arrays))
        with _worker_pool(workers, *start) as pool:
            # Longest first, so that no worker is left with a long one at the end.
            order = sorted(range(len(arrays)), key=lambda index: -len(arrays[index]))
            decoded = pool.map(_decode_in_worker, order, chunksize=1)
        texts = [""] * len(arrays)
        for index, text in zip(order, decoded):
            texts[index] = text
        return texts

    def _decode_open(self, arrays: list[np.ndarray], workers: int) -> list[str]:
        options = {
            "beam_width": self.config.beam_size,
            "beam_prune_logp": self.config.beam_prune_logp,
            "token_min_logp": self.config.token_min_logp,
            # Keep every distinct prefix: history pruning would merge beams the sum keeps apart.
            "prune_history": False,
        }
        if workers > 1:
            with _worker_pool(workers) as pool:
                beams = self._decoder.decode_beams_batch(pool, arrays, **options)
        else:
            beams = self._decoder.decode_beams_batch(None, arrays, **options)
        # The search's text is whitespace-normalised already (`PieceBeamSearch`), as
        # `Tokenizer.decode`'s is.
        return [best[0][0] if best else "" for best in beams]

    def describe(self) -> dict[str, object]:
        """The decoder's settings, as results record them."""
        return {
            "decoder": "beam",
            "search": self.search,
            "lm": str(self.lm.model_path) if self.lm is not None else "",
            "beam_size": self.config.beam_size,
            "lm_weight": self.config.lm_weight,
            "word_score": self.config.word_score,
        }

    def close(self) -> None:
        """Drop the LM from pyctcdecode's class-level table."""
        if self._decoder is not None:
            self._decoder.cleanup()


@contextlib.contextmanager
def _worker_pool(
    workers: int, initializer: Callable[..., None] = _worker_signals, initargs: tuple = ()
) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of forked decoding workers; ended at once on an error, else left to finish."""
    context = multiprocessing.get_context("fork")
    pool = context.Pool(workers, initializer=initializer, initargs=initargs)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    pool.close()  # the workers finish their queue and exit on their own
    pool.join()


def request_decoder(
    request: BeamRequest,
    tokenizer: Tokenizer,
    corpus_dir: str | Path | None,
    experiment_dir: str | Path | None,
) -> BeamDecoder:
    """The decoder a command asked for: its LM (default <corpus>/lm), with the weights given,
    else those tuned for the model, else the defaults (`beam_config`)."""
    from omnirouter.evaluate.lm import LM_DIR, LanguageModelError, lm_files

    if request.lm is None and corpus_dir is None:
        raise LanguageModelError("this model has no corpus to find an LM in: pass --lm PATH")
    files = lm_files(request.lm or Path(str(corpus_dir)) / LM_DIR)
    config = beam_config(
        files,
        experiment_dir,
        request.beam_size,
        request.lm_weight,
        request.word_score,
        request.lexicon,
    )
    return BeamDecoder.from_tokenizer(tokenizer, request.lm or files.directory, config)
