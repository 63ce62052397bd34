"""The experiment's word-LM decoding: the LM built in the corpus stage, and the lm stage, which
tunes each model's beam search on the dev set and decodes every evaluation set with it.

    <corpus>/lm/                 the LM (`evaluate.lm`), with every model's tuning.json entry
    EXP/<model>/seed<s>/eval-lm/ the beam-search results, beside the greedy EXP/.../eval/
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Sequence
from pathlib import Path

from omnirouter.config import load_config
from omnirouter.data.synth.config import SynthConfig
from omnirouter.data.synth.text import TRAINING_TEXT_FILE, write_training_text
from omnirouter.evaluate.beam import BeamRequest, search_name, tuned_values
from omnirouter.evaluate.lm import LM_DIR, build_corpus_lm, lm_files
from omnirouter.evaluate.lm_tune import tune_lm
from omnirouter.evaluate.suite import LM_EVAL_DIR, evaluate_checkpoint
from omnirouter.evaluate.tables import EVAL_TABLE_STEM, read_eval_table
from omnirouter.experiment.config import ExperimentConfig, PlannedRun
from omnirouter.experiment.stages import eval_table_path, first_seed_runs
from omnirouter.experiment.training_runs import newest_checkpoint_time
from omnirouter.jsonio import read_json
from omnirouter.report.experiment_results import LmDecoding, LmSummary
from omnirouter.report.tables import write_eval_table_pages


def experiment_lm_dir(config: ExperimentConfig) -> Path:
    return Path(config.corpus.corpus_dir) / LM_DIR


def write_missing_training_text(config: ExperimentConfig) -> None:
    """A synthetic corpus built before the synth build wrote its training text gets it now,
    from the experiment's synth config."""
    corpus_dir = Path(config.corpus.corpus_dir)
    if config.corpus.synth_config and not (corpus_dir / TRAINING_TEXT_FILE).is_file():
        synth = load_config(
            SynthConfig, [config.corpus.synth_config], config.corpus.synth_overrides
        )
        write_training_text(synth, corpus_dir)


def lm_pending(config: ExperimentConfig) -> str | None:
    """Why the corpus's LM must be built (again), or None."""
    files = lm_files(experiment_lm_dir(config))
    if not files.binary.is_file() or not files.info.is_file():
        return f"{files.binary} is missing"
    info = read_json(files.info, "LM description")
    if info.get("order") != config.lm.order:
        return f"it is a {info.get('order')}-gram, lm.order is {config.lm.order}"
    text = Path(config.corpus.corpus_dir) / TRAINING_TEXT_FILE
    if text.is_file():
        if not any(Path(source).name == TRAINING_TEXT_FILE for source in info.get("sources", [])):
            return f"it was built from other text than {text}"
        if text.stat().st_mtime > files.binary.stat().st_mtime:
            return f"{text} is newer"
    return None


def build_experiment_lm(config: ExperimentConfig) -> str:
    """Build the corpus's LM; returns a line saying what it is."""
    info, files = build_corpus_lm(config.corpus.corpus_dir, order=config.lm.order)
    return (
        f"{info.order}-gram of {info.sentences} sentences, {info.words} words, vocabulary "
        f"{info.vocabulary}: {files.directory}"
    )


def lm_runs(runs: Sequence[PlannedRun]) -> list[PlannedRun]:
    """The first seed of each model: the runs decoded with the LM."""
    return list(first_seed_runs(runs).values())


def lm_table_path(run: PlannedRun) -> Path:
    return run.exp_dir / LM_EVAL_DIR / f"{EVAL_TABLE_STEM}.json"


def lm_decoding_pending(
    config: ExperimentConfig, run: PlannedRun, sets: Sequence[str]
) -> str | None:
    """Why a run must be tuned and decoded with the LM again, or None."""
    path = lm_table_path(run)
    if not path.is_file():
        return "not decoded with the LM"
    written = path.stat().st_mtime
    files = lm_files(experiment_lm_dir(config))
    if written < newest_checkpoint_time(run.exp_dir):
        return "its checkpoints are newer than its LM decoding"
    if written < files.binary.stat().st_mtime:
        return "the LM is newer than its LM decoding"
    table = read_eval_table(path)
    if {row.set_name for row in table.rows} != set(sets):
        return "decoded other sets"
    search = search_name(config.lm.lexicon)
    if table.extra.get("search") != search:
        return "decoded with the other search"
    tuned = tuned_values(files, run.exp_dir, config.lm.lexicon) or {}
    grid = {(point["lm_weight"], point["word_score"]) for point in tuned.get("grid", [])}
    wanted = set(itertools.product(config.lm.lm_weights, config.lm.word_scores))
    if tuned.get("set_name") != run.config.data.dev_set or grid != wanted:
        return "tuned on another set or grid"
    if tuned.get("beam_size") != config.lm.beam_size:
        return "tuned with another beam"
    return None


def decode_run_with_lm(
    config: ExperimentConfig, run: PlannedRun, sets: Sequence[str], device: str
) -> Path:
    """Tune the run's LM weight and word score on the dev set (stored in the LM's tuning.json),
    then decode `sets` with them into EXP/eval-lm/; returns its table's path."""
    lm_dir = experiment_lm_dir(config)
    settings = config.lm
    tune_lm(
        run.exp_dir,
        lm_dir,
        run.config.data.dev_set,
        device,
        beam_size=settings.beam_size,
        lm_weights=settings.lm_weights,
        word_scores=settings.word_scores,
        lexicon=settings.lexicon,
    )
    argv = ["omnirouter", "eval", str(run.exp_dir), "--sets", ",".join(sets)]
    argv += ["--device", device, "--decoder", "beam", "--lm", str(lm_dir)]
    if not settings.lexicon:
        argv.append("--open-vocabulary")
    request = BeamRequest(lm=lm_dir, lexicon=settings.lexicon)
    result = evaluate_checkpoint(
        run.exp_dir, sets, device=device, command=shlex.join(argv), beam=request
    )
    write_eval_table_pages(result.table, result.table_files)
    return result.table_files.json


def lm_summary(config: ExperimentConfig, runs: Sequence[PlannedRun]) -> LmSummary | None:
    """What the report shows of the LM decoding: the LM, and each model's first seed that has
    both its greedy and its LM tables; None when there is none."""
    files = lm_files(experiment_lm_dir(config))
    if not config.lm.enabled or not files.info.is_file():
        return None
    decodings = []
    for run in lm_runs(runs):
        greedy_path = eval_table_path(run)
        if not lm_table_path(run).is_file() or not greedy_path.is_file():
            continue
        beam = read_eval_table(lm_table_path(run))
        search = str(beam.extra.get("search", "open"))
        tuned = tuned_values(files, run.exp_dir, lexicon=search == search_name(lexicon=True)) or {}
        decodings.append(
            LmDecoding(
                model=run.model,
                greedy=read_eval_table(greedy_path),
                beam=beam,
                lm_weight=float(beam.extra["lm_weight"]),
                word_score=float(beam.extra["word_score"]),
                beam_size=int(beam.extra["beam_size"]),
                search=search,
                tuned_on=str(tuned.get("set_name", "")),
                real_time_factor=float(tuned.get("real_time_factor", float("nan"))),
            )
        )
    if not decodings:
        return None
    info = read_json(files.info, "LM description")
    return LmSummary(
        order=int(info["order"]),
        sentences=int(info["sentences"]),
        words=int(info["words"]),
        vocabulary=int(info["vocabulary"]),
        sources=tuple(info["sources"]),
        models=tuple(decodings),
    )
