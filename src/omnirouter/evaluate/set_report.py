"""The files written for one scored test set, in the manner of icefall's decoding output.

errs-<set>.txt      summary, then per utterance the reference, the hypothesis and the
                    aligned words with errors marked `(ref->hyp)`, `(ref->*)`, `(*->hyp)`;
                    then the substitutions, deletions and insertions by count, and
                    per-word statistics
recogs-<set>.jsonl  per utterance: raw and normalised reference and hypothesis, error counts
wer-<set>.json      the set's totals, WER and CER, with the normaliser and its version
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from omnirouter.evaluate.wer import AlignedPair, ErrorCounts, SetScore
from omnirouter.jsonio import dumps, write_json, write_text

_MISSING = "*"


@dataclass(frozen=True)
class SetFiles:
    errors: Path
    recognitions: Path
    summary: Path


def set_files(out_dir: str | Path, set_name: str) -> SetFiles:
    """Where a scored set's files are (or go) in `out_dir`."""
    out_dir = Path(out_dir)
    return SetFiles(
        errors=out_dir / f"errs-{set_name}.txt",
        recognitions=out_dir / f"recogs-{set_name}.jsonl",
        summary=out_dir / f"wer-{set_name}.json",
    )


def write_set_files(score: SetScore, out_dir: str | Path) -> SetFiles:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    files = set_files(out_dir, score.name)
    write_text(files.errors, errors_text(score))
    records = (
        {
            "cut_id": utterance.cut_id,
            "reference": utterance.reference,
            "hypothesis": utterance.hypothesis,
            "normalized_reference": utterance.normalized_reference,
            "normalized_hypothesis": utterance.normalized_hypothesis,
            **counts_record(utterance.counts),
        }
        for utterance in score.utterances
    )
    write_text(files.recognitions, "".join(dumps(record, indent=None) + "\n" for record in records))
    write_json(files.summary, summary_record(score), indent=2)
    return files


def summary_record(score: SetScore) -> dict[str, object]:
    return {
        "set": score.name,
        "num_utterances": score.num_utterances,
        **counts_record(score.counts),
        "reference_chars": score.char_counts.reference_words,
        "char_errors": score.char_counts.errors,
        "cer_percent": None if math.isnan(score.cer) else 100.0 * score.cer,
        "normalizer": score.normalizer,
        "normalizer_version": score.normalizer_version,
    }


def counts_record(counts: ErrorCounts) -> dict[str, object]:
    """Counts and WER in percent; an undefined WER (no reference words) becomes null."""
    return {
        "substitutions": counts.substitutions,
        "deletions": counts.deletions,
        "insertions": counts.insertions,
        "reference_words": counts.reference_words,
        "wer_percent": None if math.isnan(counts.wer) else 100.0 * counts.wer,
    }


def aligned_text(aligned: Iterable[AlignedPair]) -> str:
    """`a (b->c) d (e->*) (*->f)`: correct words bare, errors as (reference->hypothesis)."""
    parts = []
    for reference, hypothesis in aligned:
        if reference == hypothesis:
            parts.append(str(reference))
        else:
            parts.append(f"({reference or _MISSING}->{hypothesis or _MISSING})")
    return " ".join(parts)


def errors_text(score: SetScore) -> str:
    counts = score.counts
    wer = "nan" if math.isnan(counts.wer) else f"{100.0 * counts.wer:.2f}"
    cer = "nan" if math.isnan(score.cer) else f"{100.0 * score.cer:.2f}"
    lines = [
        f"%WER = {wer}",
        f"%CER = {cer} (over {score.char_counts.reference_words} reference characters, "
        "spaces included)",
        f"Errors: {counts.insertions} insertions, {counts.deletions} deletions, "
        f"{counts.substitutions} substitutions, over {counts.reference_words} reference words "
        f"({counts.hits} correct)",
        f"Normaliser: {score.normalizer} {score.normalizer_version}".rstrip(),
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, DELETIONS:, "
        "INSERTIONS:, PER-WORD STATS:",
        "",
        "PER-UTT DETAILS: reference and hypothesis as given, then aligned after normalisation",
    ]
    for utterance in score.utterances:
        lines += [
            f"{utterance.cut_id}:",
            f"  ref:   {utterance.reference}",
            f"  hyp:   {utterance.hypothesis}",
            f"  align: {aligned_text(utterance.aligned)}",
        ]
    lines += _error_sections([pair for u in score.utterances for pair in u.aligned])
    return "\n".join(lines) + "\n"


def _error_sections(pairs: list[AlignedPair]) -> list[str]:
    substitutions = Counter(
        (ref, hyp) for ref, hyp in pairs if ref is not None and hyp is not None and ref != hyp
    )
    deletions = Counter(ref for ref, hyp in pairs if hyp is None)
    insertions = Counter(hyp for ref, hyp in pairs if ref is None)
    lines = ["", "SUBSTITUTIONS: count ref -> hyp"]
    lines += [f"{n}   {ref} -> {hyp}" for (ref, hyp), n in _by_count(substitutions)]
    lines += ["", "DELETIONS: count ref"]
    lines += [f"{n}   {word}" for word, n in _by_count(deletions)]
    lines += ["", "INSERTIONS: count hyp"]
    lines += [f"{n}   {word}" for word, n in _by_count(insertions)]
    lines += ["", "PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp"]
    lines += _per_word_stats(pairs)
    return lines


def _per_word_stats(pairs: list[AlignedPair]) -> list[str]:
    correct: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    in_reference: Counter[str] = Counter()
    in_hypothesis: Counter[str] = Counter()
    for reference, hypothesis in pairs:
        if reference is not None:
            in_reference[reference] += 1
        if hypothesis is not None:
            in_hypothesis[hypothesis] += 1
        if reference == hypothesis:
            correct[reference] += 1  # type: ignore[index]
            continue
        # A substitution is an error of both words; a deletion or insertion of the one present.
        for word in (reference, hypothesis):
            if word is not None:
                errors[word] += 1
    words = sorted(in_reference.keys() | in_hypothesis.keys(), key=lambda w: (-errors[w], w))
    return [
        f"{word}   {correct[word]} {errors[word]} {in_reference[word]} {in_hypothesis[word]}"
        for word in words
    ]


def _by_count(counter: Counter) -> list[tuple[object, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))
