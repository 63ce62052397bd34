"""The evaluation's tables as the user reads them: one model's WER/CER table, several models
side by side (paper Table I), the routed-proposal sweep and the word errors by training
frequency, as markdown (and CSV where a spreadsheet wants them), from the saved results.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from omnirouter.evaluate.compare import CompareTable
from omnirouter.evaluate.proposal_sweep import SWEEP_STEM, ProposalSweep
from omnirouter.evaluate.tables import (
    EVAL_TABLE_STEM,
    TEST_ROLE,
    EvalTable,
    TableFiles,
    format_number,
    read_eval_table,
    table_files,
)
from omnirouter.evaluate.word_frequency import REPORT_NAME, SetWordFrequency


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


_EVAL_HEADER = (
    "set",
    "role",
    "utterances",
    "ref words",
    "sub",
    "del",
    "ins",
    "WER (%)",
    "CER (%)",
)


def _eval_rows(table: EvalTable) -> list[list[str]]:
    rows = [
        [
            row.set_name,
            row.role,
            str(row.num_utterances),
            str(row.reference_words),
            str(row.substitutions),
            str(row.deletions),
            str(row.insertions),
            format_number(row.wer_percent),
            format_number(row.cer_percent),
        ]
        for row in table.rows
    ]
    averaged = ", ".join(row.set_name for row in table.averaged_rows)
    blank = [""] * 6
    average = [format_number(table.average_wer_percent), format_number(table.average_cer_percent)]
    rows.append([f"average ({averaged})", *blank, *average])
    rows.append([f"pooled ({averaged})", *blank, format_number(table.pooled_wer_percent), ""])
    return rows


def _decoding(table: EvalTable) -> str:
    """How the table's transcripts were decoded, as `omnirouter eval` recorded it."""
    extra = table.extra or {}
    if extra.get("decoder") != "beam":
        return "Greedy CTC decoding"
    return (
        f"CTC beam search (beam {extra.get('beam_size')}) with the word LM {extra.get('lm')}, "
        f"LM weight {extra.get('lm_weight')}, word score {extra.get('word_score')}"
    )


def eval_table_markdown(table: EvalTable) -> str:
    normalizer = f"{table.normalizer} {table.normalizer_version}".strip()
    header = [
        f"# WER and CER of {table.model}",
        "",
        f"{_decoding(table)}; references and hypotheses normalised with {normalizer}. "
        "Average: mean of the per-set WERs (CERs); pooled: all word errors over all reference "
        "words. CER: character errors over reference characters, spaces included.",
    ]
    if table.command:
        header += ["", f"Command: `{table.command}`"]
    return "\n".join([*header, "", markdown_table(_EVAL_HEADER, _eval_rows(table)), ""])


def _compare_rows(table: CompareTable) -> tuple[list[str], list[list[str]]]:
    others = [m for m, name in enumerate(table.models) if name != table.baseline]
    header = [
        "set",
        *table.models,
        *(f"{table.models[m]} vs {table.baseline} (%)" for m in others),
    ]
    body = []
    for row in table.rows:
        label = row.set_name if row.role in (TEST_ROLE, "") else f"{row.set_name} ({row.role})"
        body.append(
            [
                label,
                *(format_number(wer) for wer in row.wer_percent),
                *(format_number(row.relative_reduction_percent[m], 1) for m in others),
            ]
        )
    count = len(table.averaged_sets)
    body.append(
        [
            f"mean WER over {count} sets; reduction of the mean WER",
            *(format_number(wer) for wer in table.mean_wer_percent),
            *(format_number(table.reduction_of_mean_wer_percent[m], 1) for m in others),
        ]
    )
    body.append(
        [
            f"mean of the per-set relative reductions ({count} sets)",
            *([""] * len(table.models)),
            *(format_number(table.mean_relative_reduction_percent[m], 1) for m in others),
        ]
    )
    return header, body


def compare_markdown(table: CompareTable) -> str:
    header, body = _compare_rows(table)
    normalizers = sorted(set(table.normalizers))
    lines = [
        f"# WER (%) per test set and relative WER reduction (%) against {table.baseline}",
        "",
        f"Averaged sets: {', '.join(table.averaged_sets)}. Normaliser: {'; '.join(normalizers)}"
        + (" (differs between models: WERs are not comparable)" if len(normalizers) > 1 else ""),
        "",
        markdown_table(header, body),
        "",
    ]
    return "\n".join(lines)


def sweep_markdown(sweep: ProposalSweep) -> str:
    first = sweep.points[0].config
    lines = [
        f"# Routed proposals: {sweep.model}",
        "",
        f"K proposals per frame in one forward of a K-times batch: {first.description} "
        f"(noise seed {first.seed}). Of the routing decisions of proposals 1…K−1 on the "
        f"first batch, {100 * sweep.changed_fraction:.1f}% differ from proposal 0's. Cost: "
        "the median forward of one batch, every K timed interleaved; recognition s: one pass "
        "over the sets.",
        "",
        "| K | "
        + " | ".join(f"{name} WER / CER %" for name in sweep.set_names)
        + " | recognition s | forward ms | cost vs K=1 |",
        "|---|" + "---|" * len(sweep.set_names) + "---|---|---|",
    ]
    for point in sweep.points:
        cells = [f"{100 * s.wer:.2f} / {100 * s.cer:.2f}" for s in point.scores]
        lines.append(
            f"| {point.config.count} | "
            + " | ".join(cells)
            + f" | {point.seconds:.1f} | {1e3 * point.forward_seconds:.1f}"
            + f" | {sweep.relative_cost(point):.2f}× |"
        )
    if sweep.command:
        lines += ["", f"Command: `{sweep.command}`"]
    return "\n".join(lines) + "\n"


def word_frequency_markdown(results: Sequence[SetWordFrequency], model: str) -> str:
    lines = [
        f"# Word errors by training frequency: {model}",
        "",
        "Each reference word's bucket is how often it occurs in the training transcripts "
        "(normalised). Error rate: the bucket's substitutions and deletions over its words; "
        "WER points: the part of the set's WER they make; insertions have no reference word.",
        "",
    ]
    for result in results:
        lines += [
            f"## {result.set_name}: WER {_cell(result.wer_percent, 2)}% over "
            f"{result.reference_words} words",
            "",
            "| training count | share of words % | error rate % | WER points |",
            "|---|---|---|---|",
        ]
        for bucket in result.buckets:
            lines.append(
                f"| {bucket.label} | {_cell(result.share_percent(bucket), 1)} | "
                f"{_cell(bucket.error_rate_percent, 1)} | "
                f"{_cell(result.wer_part_percent(bucket.errors), 2)} |"
            )
        lines += [
            f"| insertions | – | – | {_cell(result.wer_part_percent(result.insertions), 2)} |",
            "",
        ]
    return "\n".join(lines)


def _cell(value: float, digits: int) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def write_eval_table_pages(table: EvalTable, files: TableFiles) -> TableFiles:
    """The markdown and CSV of a saved evaluation table, at `files`' paths."""
    files.markdown.parent.mkdir(parents=True, exist_ok=True)
    files.markdown.write_text(eval_table_markdown(table))
    _write_csv(files.csv, _EVAL_HEADER, _eval_rows(table))
    return files


def write_compare_pages(table: CompareTable, files: TableFiles) -> TableFiles:
    """The markdown and CSV of a saved comparison, at `files`' paths."""
    files.markdown.parent.mkdir(parents=True, exist_ok=True)
    files.markdown.write_text(compare_markdown(table))
    _write_csv(files.csv, *_compare_rows(table))
    return files


def write_sweep_page(sweep: ProposalSweep, directory: str | Path) -> Path:
    """`sweep.md` beside the saved `sweep.json`, and each K's table in its own `k<K>/`."""
    directory = Path(directory)
    for point in sweep.points:
        files = table_files(directory / f"k{point.config.count}", EVAL_TABLE_STEM)
        write_eval_table_pages(read_eval_table(files.json), files)
    markdown = directory / f"{SWEEP_STEM}.md"
    markdown.write_text(sweep_markdown(sweep))
    return markdown


def write_word_frequency_page(
    results: Sequence[SetWordFrequency], model: str, out_dir: Path
) -> Path:
    """`word-frequency.md` beside the saved `word-frequency.json`."""
    markdown = out_dir / f"{REPORT_NAME}.md"
    markdown.write_text(word_frequency_markdown(results, model))
    return markdown


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
