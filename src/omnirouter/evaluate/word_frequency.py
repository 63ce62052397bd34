"""Word errors by how often each reference word occurs in the training transcripts.

A CTC model without a language model spells every word from the sound; words it heard often in
training it can learn as wholes, words it never heard it must spell letter by letter. Splitting
a set's errors by the reference word's training count (unseen, 1–2, 3–9, 10–99, 100 or more)
shows where the WER comes from, and so what would lower it: a WER made of unseen and rare words
asks for more text (or a lexicon, or a language model), one spread over frequent words for a
better acoustic model.

Every substitution and deletion belongs to its reference word's bucket; an insertion has no
reference word and is counted apart. The buckets' errors and the insertions add up to the
set's word errors, so their shares of the WER add up to it too. Both sides are normalised as
the set was scored (the normaliser named in its wer-<set>.json), training transcripts alike.
The counts take every training transcript, those of utterances the trainer's length limits
skip included.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from omnirouter.evaluate.normalize import TextNormalizer
from omnirouter.evaluate.wer import Recognition, SetScore, score_set
from omnirouter.jsonio import write_json

# (lowest count, highest count or None for no bound, label)
BUCKETS: tuple[tuple[int, int | None, str], ...] = (
    (0, 0, "unseen"),
    (1, 2, "1–2"),
    (3, 9, "3–9"),
    (10, 99, "10–99"),
    (100, None, "≥100"),
)
REPORT_NAME = "word-frequency"  # EXP/eval/word-frequency.{md,json}


@dataclass(frozen=True)
class FrequencyBucket:
    label: str
    reference_words: int  # running words of the set in this bucket
    errors: int  # their substitutions and deletions

    @property
    def error_rate_percent(self) -> float:
        return percentage(self.errors, self.reference_words)


@dataclass(frozen=True)
class SetWordFrequency:
    set_name: str
    reference_words: int
    insertions: int
    buckets: tuple[FrequencyBucket, ...]

    @property
    def wer_percent(self) -> float:
        errors = sum(bucket.errors for bucket in self.buckets) + self.insertions
        return percentage(errors, self.reference_words)

    def share_percent(self, bucket: FrequencyBucket) -> float:
        """The bucket's part of the set's running words."""
        return percentage(bucket.reference_words, self.reference_words)

    def wer_part_percent(self, errors: int) -> float:
        """WER points that `errors` account for."""
        return percentage(errors, self.reference_words)


def percentage(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else math.nan


def training_word_counts(transcripts: Iterable[str], normalizer: TextNormalizer) -> Counter[str]:
    """Running-word counts of the normalised training transcripts."""
    counts: Counter[str] = Counter()
    for text in transcripts:
        counts.update(normalizer(text).split())
    return counts


def bucket_label(count: int) -> str:
    for lowest, highest, label in BUCKETS:
        if count >= lowest and (highest is None or count <= highest):
            return label
    raise ValueError(f"negative word count {count}")


def errors_by_frequency(score: SetScore, counts: Counter[str]) -> SetWordFrequency:
    """A scored set's word errors split by the reference word's training count."""
    words: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    insertions = 0
    for utterance in score.utterances:
        for reference, hypothesis in utterance.aligned:
            if reference is None:
                insertions += 1
                continue
            label = bucket_label(counts[reference])
            words[label] += 1
            errors[label] += reference != hypothesis
    buckets = tuple(FrequencyBucket(label, words[label], errors[label]) for _, _, label in BUCKETS)
    return SetWordFrequency(score.name, score.counts.reference_words, insertions, buckets)


def rescore_recognitions(path: Path, normalizer: TextNormalizer, set_name: str) -> SetScore:
    """A set scored again from its recogs-<set>.jsonl (raw reference and hypothesis)."""
    recognitions = [
        Recognition(record["cut_id"], record["reference"], record["hypothesis"])
        for record in map(json.loads, path.read_text().splitlines())
    ]
    return score_set(set_name, recognitions, normalizer)


def save_word_frequency(results: Sequence[SetWordFrequency], model: str, out_dir: Path) -> Path:
    """`word-frequency.json` in `out_dir`; `report.tables` writes the markdown beside it."""
    data = {
        "model": model,
        "buckets": [label for _, _, label in BUCKETS],
        "sets": [
            {
                "set": result.set_name,
                "reference_words": result.reference_words,
                "insertions": result.insertions,
                "wer_percent": result.wer_percent,
                "buckets": [asdict(bucket) for bucket in result.buckets],
            }
            for result in results
        ],
    }
    return write_json(out_dir / f"{REPORT_NAME}.json", data, indent=2)
