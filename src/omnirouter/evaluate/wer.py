"""Word error rate of a test set, per utterance and in total, with jiwer doing the alignment;
and the set's character error rate beside it.

Both sides are normalised first (see `normalize.py`), then split on whitespace for the WER.
The CER aligns the same normalised words, joined by single spaces, character by character,
spaces included (jiwer's definition). It moves long before the WER does while a model is still
learning to spell, which makes it the more telling number for small models trained briefly
(the built-in demo).

Empty references: a reference can be empty, or become empty once normalised (e.g. "uh, hmm").
Such an utterance adds no reference words; every hypothesis word is an insertion, and an
empty hypothesis is correct. The set's WER is total errors over total reference words, so an
empty reference still counts against the model. A set with no reference words at all has an
undefined WER, reported as NaN (null in JSON).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

from omnirouter.evaluate.normalize import TextNormalizer

# One aligned position: (reference word, hypothesis word); None where a side has no word
# (a deletion has no hypothesis word, an insertion no reference word).
AlignedPair = tuple[str | None, str | None]


@dataclass(frozen=True)
class Recognition:
    """A model's output for one utterance, beside the manifest's reference, both unnormalised."""

    cut_id: str
    reference: str
    hypothesis: str


@dataclass(frozen=True)
class ErrorCounts:
    """The totals of an alignment of words, or of characters (`SetScore.char_counts`, where
    "words" read "characters" and `wer` is the CER)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0  # reference words recognised correctly

    @property
    def reference_words(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Errors per reference word (a fraction, not a percentage); NaN with no reference."""
        if self.reference_words == 0:
            return math.nan
        return self.errors / self.reference_words

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.hits + other.hits,
        )


@dataclass(frozen=True)
class UtteranceErrors:
    cut_id: str
    reference: str  # as in the manifest
    hypothesis: str  # as decoded
    normalized_reference: str
    normalized_hypothesis: str
    aligned: tuple[AlignedPair, ...]  # the word alignment, in order
    counts: ErrorCounts


@dataclass(frozen=True)
class SetScore:
    name: str  # test set name
    normalizer: str  # name of the normaliser both sides went through
    normalizer_version: str
    counts: ErrorCounts  # word totals over the set
    utterances: tuple[UtteranceErrors, ...]
    char_counts: ErrorCounts  # character totals over the set (for the CER)

    @property
    def num_utterances(self) -> int:
        return len(self.utterances)

    @property
    def wer(self) -> float:
        return self.counts.wer

    @property
    def cer(self) -> float:
        """Character errors per reference character (a fraction); NaN with no reference."""
        return self.char_counts.wer


def score_set(
    name: str, recognitions: Sequence[Recognition], normalizer: TextNormalizer
) -> SetScore:
    """Normalise, align every utterance with jiwer, and total the errors."""
    if not recognitions:
        raise ValueError(f"test set {name!r}: no utterances to score")
    references = [normalizer(recognition.reference) for recognition in recognitions]
    hypotheses = [normalizer(recognition.hypothesis) for recognition in recognitions]
    alignment = jiwer.process_words(references, hypotheses)
    utterances = []
    for index, recognition in enumerate(recognitions):
        aligned, counts = _aligned_pairs(
            alignment.references[index],
            alignment.hypotheses[index],
            alignment.alignments[index],
        )
        utterances.append(
            UtteranceErrors(
                cut_id=recognition.cut_id,
                reference=recognition.reference,
                hypothesis=recognition.hypothesis,
                normalized_reference=references[index],
                normalized_hypothesis=hypotheses[index],
                aligned=aligned,
                counts=counts,
            )
        )
    total = sum((utterance.counts for utterance in utterances), ErrorCounts())
    # Words joined by single spaces: the CER sees the same words the WER does, so runs of
    # whitespace a normaliser leaves behind are not counted as characters.
    characters = jiwer.process_characters(
        [" ".join(text.split()) for text in references],
        [" ".join(text.split()) for text in hypotheses],
    )
    char_total = ErrorCounts(
        characters.substitutions, characters.deletions, characters.insertions, characters.hits
    )
    return SetScore(name, normalizer.name, normalizer.version, total, tuple(utterances), char_total)


def _aligned_pairs(
    reference_words: Sequence[str],
    hypothesis_words: Sequence[str],
    chunks: Sequence[jiwer.AlignmentChunk],
) -> tuple[tuple[AlignedPair, ...], ErrorCounts]:
    """jiwer's alignment chunks as word pairs, and the utterance's error counts."""
    pairs: list[AlignedPair] = []
    tally = {"equal": 0, "substitute": 0, "delete": 0, "insert": 0}
    for chunk in chunks:
        reference_span = reference_words[chunk.ref_start_idx : chunk.ref_end_idx]
        hypothesis_span = hypothesis_words[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if chunk.type == "delete":
            pairs.extend((word, None) for word in reference_span)
        elif chunk.type == "insert":
            pairs.extend((None, word) for word in hypothesis_span)
        else:  # "equal" and "substitute" chunks pair words one to one
            pairs.extend(zip(reference_span, hypothesis_span, strict=True))
        tally[chunk.type] += max(len(reference_span), len(hypothesis_span))
    counts = ErrorCounts(
        substitutions=tally["substitute"],
        deletions=tally["delete"],
        insertions=tally["insert"],
        hits=tally["equal"],
    )
    return tuple(pairs), counts
