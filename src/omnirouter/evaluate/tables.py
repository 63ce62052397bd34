"""The evaluation table of one model: a row per test set and the average, as Markdown, CSV and
JSON. The JSON is what `omnirouter compare` and the report read back.

Averages are over the sets whose role is "test" (dev sets are listed but not averaged, as the
paper averages its test sets only); when no set has a known role, over every set. Two averages
are given: the mean of the per-set WERs (every set weighs the same, as in the paper's tables)
and the pooled WER (all errors over all reference words, so big sets weigh more). The CER is
given per set and as the mean of the per-set CERs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omnirouter.evaluate.wer import SetScore
from omnirouter.jsonio import ResultFileError, plain, read_json, write_json

EVAL_DIR = "eval"  # where `omnirouter eval` writes, under the experiment directory
EVAL_TABLE_STEM = "wer"  # EXP/eval/wer.{md,csv,json}
TEST_ROLE = "test"


@dataclass(frozen=True)
class EvalRow:
    set_name: str
    role: str  # "test", "dev", or "" when the corpus does not say
    num_utterances: int
    reference_words: int
    substitutions: int
    deletions: int
    insertions: int
    wer_percent: float | None  # None when the set has no reference words
    # Character error rate over the same normalised text; None in tables written before it.
    reference_chars: int | None = None
    char_errors: int | None = None
    cer_percent: float | None = None

    @staticmethod
    def from_score(score: SetScore, role: str) -> EvalRow:
        wer, cer = score.wer, score.cer
        return EvalRow(
            set_name=score.name,
            role=role,
            num_utterances=score.num_utterances,
            reference_words=score.counts.reference_words,
            substitutions=score.counts.substitutions,
            deletions=score.counts.deletions,
            insertions=score.counts.insertions,
            wer_percent=None if math.isnan(wer) else 100.0 * wer,
            reference_chars=score.char_counts.reference_words,
            char_errors=score.char_counts.errors,
            cer_percent=None if math.isnan(cer) else 100.0 * cer,
        )

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


@dataclass(frozen=True)
class EvalTable:
    model: str  # the experiment directory or checkpoint that was evaluated
    rows: tuple[EvalRow, ...]
    normalizer: str
    normalizer_version: str
    command: str = ""  # the command line that produced the table, to repeat it
    extra: dict[str, object] = field(default_factory=dict)  # versions, time, device, ...

    @property
    def averaged_rows(self) -> tuple[EvalRow, ...]:
        rows = [row for row in self.rows if row.role == TEST_ROLE] or list(self.rows)
        return tuple(row for row in rows if row.wer_percent is not None)

    @property
    def average_wer_percent(self) -> float | None:
        """Mean of the per-set WERs of the averaged sets."""
        rows = self.averaged_rows
        return statistics.fmean(row.wer_percent for row in rows) if rows else None  # type: ignore[misc]

    @property
    def average_cer_percent(self) -> float | None:
        """Mean of the per-set CERs of the averaged sets; None when one of them has none."""
        values = [row.cer_percent for row in self.averaged_rows]
        return None if not values or None in values else statistics.fmean(values)  # type: ignore[arg-type]

    @property
    def pooled_wer_percent(self) -> float | None:
        """All errors over all reference words of the averaged sets."""
        rows = self.averaged_rows
        words = sum(row.reference_words for row in rows)
        return 100.0 * sum(row.errors for row in rows) / words if words else None

    def row(self, set_name: str) -> EvalRow | None:
        return next((row for row in self.rows if row.set_name == set_name), None)


def eval_table_from_scores(
    model: str,
    scores: Sequence[SetScore],
    roles: Mapping[str, str],
    command: str = "",
    extra: Mapping[str, object] | None = None,
) -> EvalTable:
    if not scores:
        raise ValueError("no scored sets to tabulate")
    normalizers = {(score.normalizer, score.normalizer_version) for score in scores}
    if len(normalizers) > 1:
        raise ValueError(f"sets were scored with different normalisers: {sorted(normalizers)}")
    normalizer, version = normalizers.pop()
    rows = tuple(EvalRow.from_score(score, roles.get(score.name, "")) for score in scores)
    return EvalTable(model, rows, normalizer, version, command, dict(extra or {}))


@dataclass(frozen=True)
class TableFiles:
    markdown: Path
    csv: Path
    json: Path


def table_files(out_dir: str | Path, stem: str) -> TableFiles:
    out_dir = Path(out_dir)
    return TableFiles(out_dir / f"{stem}.md", out_dir / f"{stem}.csv", out_dir / f"{stem}.json")


def format_number(value: float | None, digits: int = 2) -> str:
    """'12.34'; '–' for a number not measured (None) or undefined (NaN)."""
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def save_eval_table(
    table: EvalTable, out_dir: str | Path, stem: str = EVAL_TABLE_STEM
) -> TableFiles:
    """The table's JSON (`read_eval_table` reads it back); `report.tables` writes the markdown
    and CSV beside it, at the paths of the returned `TableFiles`."""
    files = table_files(out_dir, stem)
    record = plain(table)
    record["average_wer_percent"] = table.average_wer_percent
    record["average_cer_percent"] = table.average_cer_percent
    record["pooled_wer_percent"] = table.pooled_wer_percent
    record["averaged_sets"] = [row.set_name for row in table.averaged_rows]
    write_json(files.json, record, indent=2)
    return files


def read_eval_table(path: str | Path) -> EvalTable:
    """An `EvalTable` from its JSON file (derived averages are recomputed, not read)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluation table; run `omnirouter eval` first")
    record = read_json(path, "evaluation table")
    try:
        rows = tuple(EvalRow(**row) for row in record["rows"])
        return EvalTable(
            model=record["model"],
            rows=rows,
            normalizer=record["normalizer"],
            normalizer_version=record["normalizer_version"],
            command=record.get("command", ""),
            extra=record.get("extra", {}),
        )
    except (KeyError, TypeError) as error:
        raise ResultFileError(f"{path}: not an evaluation table ({error})") from None
