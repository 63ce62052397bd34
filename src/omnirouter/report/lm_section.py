"""The report's section on beam-search decoding with the corpus's word LM, beside greedy."""

from __future__ import annotations

from omnirouter.evaluate.tables import EvalRow
from omnirouter.report.experiment_results import LmSummary
from omnirouter.report.numbers import MISSING, number, signed_percent
from omnirouter.report.page import Paragraph, Section, Table

SEARCHES = {
    "lexicon": "over the LM's words only (flashlight-text's lexicon decoder)",
    "open": "open-vocabulary (pyctcdecode's prefix search)",
}


def lm_section(lm: LmSummary) -> Section:
    first = lm.models[0]
    intro = Paragraph(
        f"CTC beam search {SEARCHES.get(first.search, first.search)}, beam {first.beam_size}, "
        f"with a word {lm.order}-gram (modified Kneser-Ney, KenLM) of {lm.sentences:,} "
        f"sentences ({lm.words:,} words, {lm.vocabulary:,} distinct) from "
        f"{', '.join(f'`{source}`' for source in lm.sources)}: the corpus's training text, "
        "no dev or test sentence. The LM weight and word score of each model were tuned on "
        f"{first.tuned_on or 'the dev set'} (`omnirouter lm tune`), never on a test set. "
        "The findings above stay on greedy WER, as in the paper."
    )
    tuning = Table(
        ("model", "LM weight", "word score", "real-time factor (one core)"),
        tuple(
            (
                decoding.model,
                f"{decoding.lm_weight:g}",
                f"{decoding.word_score:g}",
                number(decoding.real_time_factor, 4),
            )
            for decoding in lm.models
        ),
        "Tuned values, and the beam search's seconds per second of audio on one core.",
    )
    return Section(
        "Decoding with a word LM",
        (
            intro,
            tuning,
            _rate_table(lm, "wer"),
            _rate_table(lm, "cer"),
            Paragraph(_weakest_gain(lm)),
        ),
    )


def _rate(row: EvalRow | None, metric: str) -> float | None:
    return None if row is None else getattr(row, f"{metric}_percent")


def _cell(greedy: float | None, beam: float | None) -> str:
    if greedy is None or beam is None:
        return MISSING
    change = 100 * (beam - greedy) / greedy if greedy else None
    return f"{number(greedy)} → {number(beam)} ({signed_percent(change)})"


def _rate_table(lm: LmSummary, metric: str) -> Table:
    names = list(dict.fromkeys(row.set_name for row in lm.models[0].greedy.rows))
    rows = []
    for name in names:
        cells = []
        for decoding in lm.models:
            greedy = _rate(_row(decoding.greedy.rows, name), metric)
            cells.append(_cell(greedy, _rate(_row(decoding.beam.rows, name), metric)))
        rows.append((name, *cells))
    label = metric.upper()
    return Table(
        ("set", *(decoding.model for decoding in lm.models)),
        tuple(rows),
        f"{label} (%) per set of each model's first seed: greedy → with the LM (relative change).",
    )


def _row(rows: tuple[EvalRow, ...], name: str) -> EvalRow | None:
    return next((row for row in rows if row.set_name == name), None)


def _weakest_gain(lm: LmSummary) -> str:
    """Where the LM helped least and most: the test sets with the smallest and largest mean
    relative WER reduction."""
    changes: dict[str, list[float]] = {}
    for decoding in lm.models:
        for row in decoding.greedy.averaged_rows:
            greedy, beam = row.wer_percent, _rate(_row(decoding.beam.rows, row.set_name), "wer")
            if greedy and beam is not None:
                changes.setdefault(row.set_name, []).append(100 * (beam - greedy) / greedy)
    if not changes:
        return "No test set has both a greedy and an LM WER."
    means = {name: sum(values) / len(values) for name, values in changes.items()}
    weakest = max(means, key=means.__getitem__)
    strongest = min(means, key=means.__getitem__)
    return (
        f"Relative WER change with the LM, mean over the models: least help on {weakest} "
        f"({signed_percent(means[weakest])}), most on {strongest} "
        f"({signed_percent(means[strongest])}). Text the LM never saw, or speech whose greedy "
        "transcript is far from any word it knows, gains least."
    )
