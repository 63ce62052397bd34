"""Several models' evaluation tables side by side, as the paper's Table I: WER per test set per
model, and each model's relative WER reduction against a baseline.

Relative reduction of model m against baseline b on a set: 100 · (WER_b − WER_m) / WER_b.
Averaged two ways, both reported and labelled, because "reduces average WER by x%" can mean
either:
  - mean of per-set relative reductions: every set weighs the same, whatever its WER
    (the paper's "11.2%" against the dense model is this one: its Table I gives 11.17%);
  - relative reduction of the mean WER: sets with high WER weigh more.
Both use the averaged sets: the test-role sets that every model was scored on.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omnirouter.evaluate.tables import (
    EVAL_DIR,
    EVAL_TABLE_STEM,
    TEST_ROLE,
    EvalTable,
    TableFiles,
    table_files,
)
from omnirouter.jsonio import write_json

logger = logging.getLogger(__name__)

COMPARE_TABLE_STEM = "compare"


@dataclass(frozen=True)
class CompareRow:
    set_name: str
    role: str
    wer_percent: tuple[float | None, ...]  # per model, in CompareTable.models order
    relative_reduction_percent: tuple[float | None, ...]  # per model, against the baseline


@dataclass(frozen=True)
class CompareTable:
    models: tuple[str, ...]
    baseline: str
    rows: tuple[CompareRow, ...]
    averaged_sets: tuple[str, ...]
    mean_wer_percent: tuple[float | None, ...]  # per model, over the averaged sets
    mean_relative_reduction_percent: tuple[float | None, ...]  # mean of per-set reductions
    reduction_of_mean_wer_percent: tuple[float | None, ...]  # reduction of the mean WER
    normalizers: tuple[str, ...]  # "name version" per model


def relative_reduction(baseline: float | None, value: float | None) -> float | None:
    """100 · (baseline − value) / baseline; None when undefined (missing, or baseline 0)."""
    if baseline is None or value is None or baseline == 0:
        return None
    return 100.0 * (baseline - value) / baseline


def _mean(values: Sequence[float | None]) -> float | None:
    if not values or any(value is None for value in values):
        return None
    return statistics.fmean(values)  # type: ignore[arg-type]


def compare_tables(
    tables: Sequence[EvalTable], names: Sequence[str], baseline: str | None = None
) -> CompareTable:
    """Table I from one `EvalTable` per model; `baseline` defaults to the first name."""
    if len(tables) != len(names) or not tables:
        raise ValueError(f"need one name per table, got {len(names)} names for {len(tables)}")
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be distinct: {list(names)}")
    baseline = names[0] if baseline is None else baseline
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not one of the models {list(names)}")
    base = names.index(baseline)
    normalizers = tuple(f"{t.normalizer} {t.normalizer_version}".strip() for t in tables)
    if len(set(normalizers)) > 1:
        logger.warning("models were scored with different normalisers: %s", normalizers)

    roles: dict[str, str] = {}
    for table in tables:
        for eval_row in table.rows:
            roles.setdefault(eval_row.set_name, eval_row.role)
    rows = []
    for set_name, role in roles.items():
        wers = tuple(_wer(table, set_name) for table in tables)
        reductions = tuple(relative_reduction(wers[base], wer) for wer in wers)
        rows.append(CompareRow(set_name, role, wers, reductions))

    complete = [row for row in rows if all(wer is not None for wer in row.wer_percent)]
    averaged = [row for row in complete if row.role == TEST_ROLE] or complete
    means = tuple(_mean([row.wer_percent[m] for row in averaged]) for m in range(len(names)))
    return CompareTable(
        models=tuple(names),
        baseline=baseline,
        rows=tuple(rows),
        averaged_sets=tuple(row.set_name for row in averaged),
        mean_wer_percent=means,
        mean_relative_reduction_percent=tuple(
            _mean([row.relative_reduction_percent[m] for row in averaged])
            for m in range(len(names))
        ),
        reduction_of_mean_wer_percent=tuple(
            relative_reduction(means[base], mean) for mean in means
        ),
        normalizers=normalizers,
    )


def _wer(table: EvalTable, set_name: str) -> float | None:
    row = table.row(set_name)
    return None if row is None else row.wer_percent


def save_compare_table(
    table: CompareTable, out_dir: str | Path, stem: str = COMPARE_TABLE_STEM
) -> TableFiles:
    """The table's JSON; `report.tables` writes the markdown and CSV beside it."""
    files = table_files(out_dir, stem)
    write_json(files.json, table, indent=2)
    return files


def locate_eval_table(path: str | Path) -> Path:
    """The eval JSON of an experiment directory (EXP/eval/wer.json), of an eval output
    directory (DIR/wer.json), or the JSON file itself."""
    path = Path(path)
    if path.is_file():
        return path
    for candidate in (
        path / EVAL_DIR / f"{EVAL_TABLE_STEM}.json",
        path / f"{EVAL_TABLE_STEM}.json",
    ):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{path}: no evaluation table ({EVAL_DIR}/{EVAL_TABLE_STEM}.json); "
        f"run `omnirouter eval {path}` first"
    )


def model_names(paths: Sequence[str | Path]) -> list[str]:
    """Short distinct names for several models: the shortest ending of their experiment
    directories' paths that tells them apart, the same number of parts for each
    (exp/demo/dense/seed0 and exp/demo/omni/seed0 are dense/seed0 and omni/seed0)."""
    parts = [_experiment_dir(path).parts for path in paths]
    for length in range(1, max((len(each) for each in parts), default=0) + 1):
        names = ["/".join(each[-length:]) for each in parts]
        if len(set(names)) == len(names):
            return names
    return ["/".join(each) for each in parts]  # the same directory twice: no name tells


def _experiment_dir(path: str | Path) -> Path:
    path = Path(path).resolve()
    if path.is_file():
        path = path.parent
    if path.name == EVAL_DIR:
        path = path.parent
    return path
