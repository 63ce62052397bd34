"""`omnirouter word-errors EXP`: an evaluated experiment's errors by training word frequency
(see `word_frequency`), from the files `omnirouter eval` wrote and the corpus's manifests."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from omnirouter.data.loader import train_cuts
from omnirouter.evaluate.model_file import RUN_CONFIG_FILE, experiment_data_config
from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.set_report import set_files
from omnirouter.evaluate.tables import EVAL_DIR
from omnirouter.evaluate.word_frequency import (
    SetWordFrequency,
    errors_by_frequency,
    rescore_recognitions,
    save_word_frequency,
    training_word_counts,
)


def word_errors_of_experiment(
    experiment: Path, sets: Sequence[str] | None = None, corpus_dir: str | None = None
) -> tuple[list[SetWordFrequency], Path]:
    """The word errors of the experiment's scored sets by training frequency, saved as
    EXP/eval/word-frequency.json; returns them and that file."""
    config_path, eval_dir = experiment / RUN_CONFIG_FILE, experiment / EVAL_DIR
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{experiment} is not an experiment directory (no {RUN_CONFIG_FILE})"
        )
    names = list(sets) if sets else _scored_sets(eval_dir)
    if not names:
        raise FileNotFoundError(f"no scored sets in {eval_dir}: run `omnirouter eval` first")
    summaries = {name: _summary(eval_dir, name) for name in names}
    normalizers = {summary["normalizer"] for summary in summaries.values()}
    if len(normalizers) > 1:
        raise ValueError(f"the sets were scored with different normalisers: {sorted(normalizers)}")
    normalizer = get_normalizer(normalizers.pop())
    versions = {summary.get("normalizer_version", "") for summary in summaries.values()}
    if versions != {normalizer.version}:
        raise ValueError(
            f"the sets were scored with normaliser version(s) {sorted(versions)}, this "
            f"installation has {normalizer.version!r}: evaluate them again "
            "(`omnirouter eval`) so that the rescoring counts the same words"
        )
    data = experiment_data_config(experiment)
    if corpus_dir is not None:
        data = dataclasses.replace(data, corpus_dir=corpus_dir)
    transcripts = (
        supervision.text or ""
        for cut in train_cuts(data, with_data=False)
        for supervision in cut.supervisions
    )
    counts = training_word_counts(transcripts, normalizer)
    results = [
        errors_by_frequency(
            rescore_recognitions(set_files(eval_dir, name).recognitions, normalizer, name), counts
        )
        for name in names
    ]
    return results, save_word_frequency(results, str(experiment), eval_dir)


def _scored_sets(eval_dir: Path) -> list[str]:
    return sorted(path.stem.removeprefix("wer-") for path in eval_dir.glob("wer-*.json"))


def _summary(eval_dir: Path, name: str) -> dict:
    files = set_files(eval_dir, name)
    if not files.summary.is_file() or not files.recognitions.is_file():
        available = ", ".join(_scored_sets(eval_dir)) or "none"
        raise FileNotFoundError(f"set {name!r} was not scored in {eval_dir} (scored: {available})")
    return json.loads(files.summary.read_text())
