"""pyctcdecode's CTC prefix beam search, with its word-piece handling fixed for sentencepiece.

pyctcdecode (0.5) reads a label that ends with `▁` as "the next label starts a new word", and
keeps that as one flag for the whole step rather than per hypothesis. sentencepiece always has
the piece `▁` alone (it both starts and ends with the marker), so merely *trying* it at a step
makes whichever label is tried next, in any hypothesis, start a word: a hypothesis "fh" + "at"
became "fh at". Here a label starting with `▁` starts a word and nothing else does, which is
what sentencepiece's pieces mean (`▁` alone starts a word that the following pieces spell), and
`<unk>` is `▁⁇` (a word start, like sentencepiece's " ⁇ "). Everything else is pyctcdecode's:
the merging of hypotheses that share a prefix and last label (their probabilities summed), LM
scoring (`_get_lm_beams`), pruning and the final scoring, from `BeamSearchDecoderCTC`.

Word timings are not kept (nothing here uses them). `WeightedLanguageModel` scales one more LM
term by the LM weight, so that a weight of 0 leaves the acoustic model alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pyctcdecode.alphabet import BPE_TOKEN, Alphabet
from pyctcdecode.decoder import (
    EMPTY_START_BEAM,
    NULL_FRAMES,
    BeamSearchDecoderCTC,
    _merge_beams,
    _normalize_whitespace,
    _prune_history,
    _sort_and_trim_beams,
)
from pyctcdecode.language_model import LanguageModel

UNK_LABEL = BPE_TOKEN + "⁇"


def piece_alphabet(labels: Sequence[str]) -> Alphabet:
    """pyctcdecode's alphabet of the decoder labels (blank "", `<unk>` as `▁⁇`)."""
    normalized = [UNK_LABEL if label == "<unk>" else label for label in labels]
    if len(set(normalized)) != len(normalized):
        raise ValueError("the tokenizer's pieces are not distinct")
    return Alphabet(normalized, is_bpe=True)


class WeightedLanguageModel(LanguageModel):
    """pyctcdecode's LanguageModel, with the penalty of a word in progress that no LM word
    starts with weighted by alpha like the rest of the LM (pyctcdecode leaves it unweighted),
    so that alpha 0 is the acoustic model alone, out-of-vocabulary words included."""

    def score_partial_token(self, partial_token: str) -> float:
        return self.alpha * super().score_partial_token(partial_token)


class PieceBeamSearch(BeamSearchDecoderCTC):
    """`BeamSearchDecoderCTC` whose search reads sentencepiece pieces (module docstring)."""

    def _decode_logits(  # type: ignore[override]
        self,
        logits: np.ndarray,
        beam_width: int,
        beam_prune_logp: float,
        token_min_logp: float,
        prune_history: bool,
        hotword_scorer: Any,
        lm_start_state: Any = None,
    ) -> list[Any]:
        language_model = self._language_model
        start = lm_start_state
        if start is None and language_model is not None:
            start = language_model.get_start_state()
        cached_lm_scores: dict[Any, Any] = {("", False): (0.0, 0.0, start)}
        cached_partial_scores: dict[str, float] = {}
        beams = [EMPTY_START_BEAM]
        for logit_col in logits:
            tried = set(np.where(logit_col >= token_min_logp)[0]) | {int(logit_col.argmax())}
            new_beams = []
            for index in tried:
                logp, label = logit_col[index], self._idx2vocab[index]
                for text, next_word, word_part, last_label, _, _, score in beams:
                    if label == "" or label == last_label:  # a blank, or a repeat: collapsed
                        beam = (text, next_word, word_part, label)
                    elif label.startswith(BPE_TOKEN):  # a new word: the finished one is scored
                        beam = (text, word_part, label[len(BPE_TOKEN) :], label)
                    else:  # the word goes on
                        beam = (text, next_word, word_part + label, label)
                    new_beams.append((*beam, [], NULL_FRAMES, score + logp))
            new_beams = _merge_beams(new_beams)
            scored = self._get_lm_beams(
                new_beams, hotword_scorer, cached_lm_scores, cached_partial_scores
            )
            best = max(beam[-1] for beam in scored)
            scored = [beam for beam in scored if beam[-1] >= best + beam_prune_logp]
            trimmed = _sort_and_trim_beams(scored, beam_width)
            if prune_history:
                order = 1 if language_model is None else language_model.order
                beams = _prune_history(trimmed, lm_order=order)
            else:
                beams = [beam[:-1] for beam in trimmed]
        # The last word in progress is finished and scored, with the end of the sentence.
        final = [
            (text, word_part, "", None, [], NULL_FRAMES, score)
            for text, _, word_part, _, _, _, score in beams
        ]
        scored = self._get_lm_beams(
            _merge_beams(final),
            hotword_scorer,
            cached_lm_scores,
            cached_partial_scores,
            is_eos=True,
        )
        best = max(beam[-1] for beam in scored)
        scored = [beam for beam in scored if beam[-1] >= best + beam_prune_logp]
        return [
            (
                _normalize_whitespace(text),
                cached_lm_scores[(text, True)][-1] if (text, True) in cached_lm_scores else None,
                [],
                score,
                combined,
            )
            for text, _, _, _, _, _, score, combined in _sort_and_trim_beams(scored, beam_width)
        ]
