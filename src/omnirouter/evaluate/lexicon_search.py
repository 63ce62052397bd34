"""CTC beam search over an LM's words only, through flashlight-text's `LexiconDecoder`.

Every word of the LM is spelled with the tokenizer's pieces (its sentencepiece encoding), and
the spellings make a trie. A hypothesis grows only along the trie, so every word it ends is an
LM word; while a word is being spelled, the best score P(w | <s>) of the words it can still
become ranks it (the trie's max smearing, a look-ahead), and its n-gram score replaces that
when it ends. A hypothesis scores

    log Σ_paths P_ctc(path | audio) + lm_weight · ln P_lm(words) + word_score · |words|

with hypotheses that reach the same state merged by summing their probabilities (flashlight's
`log_add`; it keeps a word's paths that end in a blank apart from those that end in its last
piece, so the sum covers part of a text's paths: between its best path and all of them).
With `log_add=False` the first term is the best path's log-probability, exactly.

flashlight's decoder was written for models that end words with a silence token: a word's
last piece cannot be held for more than one step (a CTC repeat), its paths are not searched. `lm_weight` scales the natural-log probability, as in the open-vocabulary search
(`prefix_search.py`); flashlight's KenLM gives log10, so it is handed `lm_weight · ln 10`.

sentencepiece has no silence piece, and flashlight wants one: the emissions get one more column,
a silence that is never emitted (log-probability `NEVER`), as fairseq's decoder does for models
without a word separator. Words the tokenizer cannot spell without `<unk>` are left out.

Shape legend: T output steps, V vocabulary (blank included).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from omnirouter.data.tokenizer import UNK_ID
from omnirouter.evaluate.lm import LanguageModelError

if TYPE_CHECKING:
    from omnirouter.evaluate.lm import LoadedLm

NEVER = -1e4  # log-probability of the silence column: no path goes through it
BEAM_THRESHOLD = 25.0  # hypotheses this far (log) below the best are dropped
TOKEN_BEAM_SIZE = 64  # pieces tried per step, the most likely first
BLANK_ID = 0
UNKNOWN_WORD = "<unk>"


@dataclass(frozen=True)
class LexiconSettings:
    beam_size: int
    lm_weight: float  # scale of the natural-log LM probability
    word_score: float
    beam_threshold: float = BEAM_THRESHOLD
    token_beam_size: int = TOKEN_BEAM_SIZE
    # Sum the probabilities of hypotheses that reach one state (False: keep the best, Viterbi).
    # On the demo's models summing gives 0.9 WER points fewer (docs/lm-decoding.md).
    log_add: bool = True


class LexiconSearch:
    """The search of the module docstring, over `spellings` (word -> piece ids) of `lm`."""

    def __init__(self, vocab_size: int, lm: LoadedLm, spellings: dict[str, list[int]]) -> None:
        from flashlight.lib.text.decoder import SmearingMode, Trie
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        if not spellings:
            raise LanguageModelError(
                f"{lm.model_path}: no LM word can be spelled with the tokenizer"
            )
        self.vocab_size = vocab_size
        self.silence_id = vocab_size  # the extra, never-emitted column
        self.words = Dictionary([*spellings, UNKNOWN_WORD])
        self.words.set_default_index(self.words.get_index(UNKNOWN_WORD))
        self.unknown_id = self.words.get_index(UNKNOWN_WORD)
        self.language_model = KenLM(str(lm.model_path), self.words)
        self.trie = Trie(vocab_size + 1, self.silence_id)
        start = self.language_model.start(False)
        for word, pieces in spellings.items():
            index = self.words.get_index(word)
            _, unigram = self.language_model.score(start, index)
            self.trie.insert(pieces, index, unigram)
        self.trie.smear(SmearingMode.MAX)
        self._decoder = None

    def configure(self, settings: LexiconSettings) -> None:
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
        )

        options = LexiconDecoderOptions(
            beam_size=settings.beam_size,
            beam_size_token=settings.token_beam_size,
            beam_threshold=settings.beam_threshold,
            lm_weight=settings.lm_weight * math.log(10.0),
            word_score=settings.word_score,
            unk_score=-math.inf,  # words outside the LM are never output
            sil_score=0.0,
            log_add=settings.log_add,
            criterion_type=CriterionType.CTC,
        )
        self._decoder = LexiconDecoder(
            options,
            self.trie,
            self.language_model,
            self.silence_id,
            BLANK_ID,
            self.unknown_id,
            [],  # no transitions (those are ASG's)
            False,  # a word LM, not a token LM
        )

    def decode(self, log_probs_TV: np.ndarray) -> tuple[str, float]:
        """The best word sequence of one utterance and its score (module docstring)."""
        if self._decoder is None:
            raise RuntimeError("configure the search before decoding")
        steps = log_probs_TV.shape[0]
        if steps == 0:
            return "", 0.0
        emissions = np.full((steps, self.vocab_size + 1), NEVER, dtype=np.float32)
        emissions[:, : self.vocab_size] = log_probs_TV
        results = self._decoder.decode(emissions.ctypes.data, steps, self.vocab_size + 1)
        if not results:
            return "", -math.inf
        best = results[0]
        words = [self.words.get_entry(index) for index in best.words if index >= 0]
        return " ".join(words), float(best.score)


def lexicon_spellings(
    words: Sequence[str], encode: Callable[[str], list[int]], vocab_size: int
) -> dict[str, list[int]]:
    """Each word's piece ids (`encode`: the tokenizer's), leaving out words that need `<unk>`."""
    spellings = {}
    for word in words:
        pieces = encode(word)
        if pieces and UNK_ID not in pieces and max(pieces) < vocab_size:
            spellings[word] = pieces
    return spellings


def longest_match_speller(pieces: Sequence[str]) -> Callable[[str], list[int]]:
    """A speller for a bare piece list (no sentencepiece model): `▁` + the word, cut greedily
    into the longest pieces; [] when some part has no piece."""
    index = {piece: number for number, piece in enumerate(pieces) if number > UNK_ID}
    longest = max(map(len, index), default=0)

    def spell(word: str) -> list[int]:
        text, ids = "▁" + word, []
        while text:
            for size in range(min(longest, len(text)), 0, -1):
                if text[:size] in index:
                    ids.append(index[text[:size]])
                    text = text[size:]
                    break
            else:
                return []
        return ids

    return spell
