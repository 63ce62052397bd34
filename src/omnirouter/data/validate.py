"""Prepare-time checks of a set: every problem named with its utterance and file.

By default any problem stops the preparation with a `CorpusError` listing them; with
`drop_bad=True` the affected utterances are dropped instead and counted in the set's report
(which lands in corpus.json). The speech-rate filter for pseudo-labels applies to training
sets only and always reports its counts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from lhotse.cut import Cut
from tqdm import tqdm

from omnirouter.data.audio import AudioError, describe_source, load_cut_audio
from omnirouter.data.errors import DataError
from omnirouter.data.filters import (
    AUDIO_SKIP_REASONS,
    SkipReason,
    SpeechRateFilterConfig,
    speech_rate_problem,
)
from omnirouter.data.manifests import PreparedSet, cut_text
from omnirouter.data.tokenizer import Tokenizer, normalize_transcript

log = logging.getLogger(__name__)

PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class Problem:
    set_name: str
    utterance: str  # utterance id, or the line of an import table
    source: str  # the audio file (or table line) concerned
    reason: SkipReason
    detail: str = ""

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return f"[{self.set_name}] {self.utterance} ({self.source}) {self.reason.value}{detail}"


class CorpusError(DataError):
    """Problems found while preparing a corpus; the message lists them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        counts = Counter(problem.reason.value for problem in problems)
        lines = [str(problem) for problem in problems[:PROBLEMS_SHOWN]]
        if len(problems) > PROBLEMS_SHOWN:
            lines.append(f"... and {len(problems) - PROBLEMS_SHOWN} more")
        super().__init__(
            f"{len(problems)} unusable utterances ({dict(counts)}):\n  "
            + "\n  ".join(lines)
            + "\nFix them, or pass --drop-bad to drop them (they are counted in corpus.json)."
        )


@dataclass(frozen=True)
class CheckOptions:
    drop_bad: bool = False  # drop (and count) unusable utterances instead of failing
    decode_audio: bool = False  # decode every utterance's audio, not only check its file
    tokenizer: str | None = None  # a trained tokenizer whose pieces must cover every transcript
    speech_rate: SpeechRateFilterConfig = field(default_factory=SpeechRateFilterConfig)


def check_cut(
    cut: Cut, set_name: str, decode_audio: bool, tokenizer: Tokenizer | None
) -> Problem | None:
    """The first problem of one utterance, or None."""
    source = describe_source(cut)
    if not cut.has_recording:
        return Problem(set_name, cut.id, source, SkipReason.missing_audio, "no recording")
    for audio_source in cut.recording.sources:
        if audio_source.type == "file" and not Path(audio_source.source).is_file():
            return Problem(set_name, cut.id, source, SkipReason.missing_audio, "file not found")
    if cut.recording.num_samples == 0 or cut.duration <= 0:
        return Problem(set_name, cut.id, source, SkipReason.empty_audio, "zero-length audio")
    if decode_audio:
        try:
            load_cut_audio(cut)
        except AudioError as error:
            return Problem(set_name, cut.id, source, AUDIO_SKIP_REASONS[error.problem], str(error))
    text = cut_text(cut)
    if not normalize_transcript(text):
        return Problem(set_name, cut.id, source, SkipReason.empty_transcript, repr(text))
    if tokenizer is not None and (unknown := tokenizer.unknown_characters(text)):
        return Problem(
            set_name, cut.id, source, SkipReason.untokenizable, f"no piece for {unknown!r}"
        )
    return None


def check_set(
    prepared: PreparedSet, options: CheckOptions, known: Sequence[Problem] = ()
) -> PreparedSet:
    """The set with its problems resolved (error or counted drop) and, for a training set,
    the speech-rate filter applied. `known` are problems an importer met before making cuts.

    One pass over the cuts collects the ids to drop; the returned cuts filter them lazily, so
    a large lazily read manifest is never held in memory.
    """
    tokenizer = Tokenizer.load(options.tokenizer) if options.tokenizer else None
    apply_rate = prepared.role == "train" and options.speech_rate.enabled
    problems = list(known)
    filtered: Counter[str] = Counter()
    excluded: set[str] = set()
    total = 0
    for cut in tqdm(prepared.cuts, desc=f"checking {prepared.name}", leave=False):
        total += 1
        problem = check_cut(cut, prepared.name, options.decode_audio, tokenizer)
        if problem is not None:
            problems.append(problem)
            excluded.add(cut.id)
        elif apply_rate and (
            rate := speech_rate_problem(cut_text(cut), cut.duration, options.speech_rate)
        ):
            filtered[rate.value] += 1
            excluded.add(cut.id)
    if problems and not options.drop_bad:
        raise CorpusError(problems)
    for problem in problems:
        log.warning("dropping %s", problem)
    if filtered:
        log.info("%s: speech-rate filter dropped %s", prepared.name, dict(filtered))
    dropped = Counter(problem.reason.value for problem in problems) + filtered
    cuts = prepared.cuts.filter(_Without(excluded)) if excluded else prepared.cuts
    report = {**prepared.report, "kept": total - len(excluded), "dropped": dict(dropped)}
    return replace(prepared, cuts=cuts, report=report)


class _Without:
    """Predicate keeping the cuts whose id is not in a set (a class, so it can be pickled)."""

    def __init__(self, cut_ids: set[str]) -> None:
        self.cut_ids = cut_ids

    def __call__(self, cut: Cut) -> bool:
        return cut.id not in self.cut_ids


def audio_problem(set_name: str, utterance: str, error: AudioError) -> Problem:
    """A problem from an importer's failed attempt to read an audio file."""
    return Problem(
        set_name, utterance, error.source, AUDIO_SKIP_REASONS[error.problem], error.detail
    )
