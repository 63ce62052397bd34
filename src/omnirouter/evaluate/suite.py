"""Evaluating one model on several test sets: recognise, score, write the files of each set
and the table of all of them.

    EXP/eval/
      errs-<set>.txt  recogs-<set>.jsonl  wer-<set>.json    per set (see set_report.py)
      wer.md  wer.csv  wer.json                             the table (see tables.py)
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

import omnirouter
from omnirouter.data.corpus import read_corpus_info
from omnirouter.data.loader import build_eval_loader, eval_cuts, evaluation_set_names
from omnirouter.evaluate.beam import BeamDecoder, BeamRequest, request_decoder
from omnirouter.evaluate.model_file import LoadedModel, load_inference_model
from omnirouter.evaluate.normalize import WHISPER_ENGLISH, TextNormalizer, get_normalizer
from omnirouter.evaluate.proposals import ProposalConfig
from omnirouter.evaluate.recognize import recognize
from omnirouter.evaluate.set_report import SetFiles, write_set_files
from omnirouter.evaluate.tables import (
    EVAL_DIR,
    EvalTable,
    TableFiles,
    eval_table_from_scores,
    save_eval_table,
)
from omnirouter.evaluate.wer import SetScore, score_set
from omnirouter.model.ctc_model import CtcModel

if TYPE_CHECKING:
    from omnirouter.data.batch import Batch
    from omnirouter.data.config import DataConfig
    from omnirouter.data.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

LM_EVAL_DIR = "eval-lm"  # EXP/eval-lm: beam-search results, kept apart from the greedy EXP/eval


@dataclass(frozen=True)
class EvalSet:
    name: str
    role: str  # "dev", "test" or "" (unknown), as the corpus describes the set
    batches: Iterable[Batch]


@dataclass(frozen=True)
class SuiteResult:
    table: EvalTable
    table_files: TableFiles
    scores: tuple[SetScore, ...]
    set_files: tuple[SetFiles, ...]
    recognition_seconds: float = 0.0  # wall time of recognition alone, all sets


def evaluate_sets(
    model: CtcModel,
    tokenizer: Tokenizer,
    eval_sets: Sequence[EvalSet],
    out_dir: str | Path,
    device: torch.device | str = "cpu",
    normalizer: TextNormalizer | None = None,
    model_name: str = "",
    command: str = "",
    extra: Mapping[str, object] | None = None,
    proposals: ProposalConfig | None = None,
    beam: BeamDecoder | None = None,
    frame_shift_seconds: float = 0.01,
) -> SuiteResult:
    """Recognise and score every set, writing its files as soon as it is done.

    `extra` (e.g. the checkpoint and its step) is recorded in the table with the versions.
    `proposals`: decode several routed proposals per frame (`evaluate.proposals`).
    `beam`: beam search instead of greedy decoding; its real-time factor is logged, measured
    with the features' `frame_shift_seconds`."""
    normalizer = normalizer or get_normalizer(WHISPER_ENGLISH)
    scores, set_files = [], []
    seconds = 0.0
    for eval_set in eval_sets:
        started = time.perf_counter()
        beam_seconds = beam.stats.seconds if beam is not None else 0.0
        frames = [0]

        def count_frames(batch: Batch, output: object, frames: list[int] = frames) -> None:
            frames[0] += int(batch.feature_lens_B.sum())

        recognitions = recognize(
            model,
            eval_set.batches,
            tokenizer,
            device,
            description=eval_set.name,
            proposals=proposals,
            beam=beam,
            on_output=count_frames if beam is not None else None,
        )
        seconds += time.perf_counter() - started
        if beam is not None:
            _log_real_time_factor(
                eval_set.name,
                beam,
                beam.stats.seconds - beam_seconds,
                frames[0],
                frame_shift_seconds,
            )
        score = score_set(eval_set.name, recognitions, normalizer)
        scores.append(score)
        set_files.append(write_set_files(score, out_dir))
        logger.info(
            "%s: WER %.2f%%, CER %.2f%% over %d utterances (%d reference words)",
            score.name,
            100.0 * score.wer,
            100.0 * score.cer,
            score.num_utterances,
            score.counts.reference_words,
        )
    recorded = {
        **(extra or {}),
        "omnirouter_version": omnirouter.__version__,
        "torch_version": torch.__version__,
        "device": str(device),
        "host": platform.node(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    roles = {eval_set.name: eval_set.role for eval_set in eval_sets}
    table = eval_table_from_scores(model_name, scores, roles, command, recorded)
    table_files = save_eval_table(table, out_dir)
    return SuiteResult(table, table_files, tuple(scores), tuple(set_files), seconds)


def _log_real_time_factor(
    name: str, beam: BeamDecoder, seconds: float, frames: int, frame_shift_seconds: float
) -> None:
    audio = frames * frame_shift_seconds
    processes = max(beam.stats.processes or {1})
    logger.info(
        "%s: beam search %.1f s for %.1f s of audio on %d processes: real-time factor %.4f "
        "(%.4f per core)",
        name,
        seconds,
        audio,
        processes,
        seconds / max(audio, 1e-9),
        seconds * processes / max(audio, 1e-9),
    )


def default_eval_sets(data_config: DataConfig) -> list[str]:
    """The dev set, then the configured test sets (all of the corpus's test sets if none)."""

    corpus = read_corpus_info(data_config.corpus_dir)
    dev = [data_config.dev_set] if data_config.dev_set in corpus.set_names() else []
    return list(dict.fromkeys([*dev, *evaluation_set_names(data_config)]))


def evaluate_checkpoint(
    path: str | Path,
    sets: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    corpus_dir: str | None = None,
    max_duration: float | None = None,
    device: str = "cpu",
    normalizer_name: str = WHISPER_ENGLISH,
    command: str = "",
    beam: BeamRequest | None = None,
) -> SuiteResult:
    """`omnirouter eval`: a trained model (experiment directory or checkpoint) on test sets.

    The corpus and batch size default to the experiment's data config; results go to
    EXP/eval (with `beam`, beam search with an LM: EXP/eval-lm) unless `out_dir` says otherwise.
    """
    normalizer = get_normalizer(normalizer_name)  # fail before loading anything if missing
    loaded = load_inference_model(path, device=device)
    data_config, eval_sets = load_eval_sets(loaded, sets, corpus_dir, max_duration)
    decoder, extra = None, {}
    if beam is not None:
        decoder = request_decoder(
            beam, loaded.tokenizer, data_config.corpus_dir, loaded.experiment_dir
        )
        extra = decoder.describe()
    if out_dir is None:
        out_dir = experiment_eval_dir(path, loaded)
        if beam is not None:
            out_dir = Path(out_dir).parent / LM_EVAL_DIR
    return evaluate_sets(
        loaded.model,
        loaded.tokenizer,
        eval_sets,
        out_dir,
        device,
        normalizer,
        model_name=str(path),
        command=command,
        extra={
            "checkpoint": str(loaded.checkpoint_path),
            "step": loaded.step,
            "corpus_dir": str(data_config.corpus_dir),
            **extra,
        },
        beam=decoder,
        frame_shift_seconds=data_config.features.frame_shift_seconds,
    )


def experiment_eval_dir(path: str | Path, loaded: LoadedModel) -> Path:
    """EXP/eval of the experiment a model came from."""
    if loaded.experiment_dir is None:
        raise ValueError(f"{path} is not inside an experiment directory: pass --out DIR")
    return Path(loaded.experiment_dir) / EVAL_DIR


def load_eval_sets(
    loaded: LoadedModel,
    sets: Sequence[str] | None,
    corpus_dir: str | None = None,
    max_duration: float | None = None,
) -> tuple[DataConfig, list[EvalSet]]:
    """The model's data config (with any overrides) and the loaders of `sets` (default: the
    dev set and the test sets); an unknown set name is an error naming it."""

    data_config = _override_data_config(loaded.data_config, corpus_dir, max_duration)
    corpus = read_corpus_info(data_config.corpus_dir)
    names = list(sets) if sets else default_eval_sets(data_config)
    roles = {name: corpus.set(name).role for name in names}
    eval_sets = [
        EvalSet(
            name,
            roles[name],
            build_eval_loader(data_config, eval_cuts(data_config, name), loaded.tokenizer),
        )
        for name in names
    ]
    return data_config, eval_sets


def _override_data_config(
    data_config: DataConfig, corpus_dir: str | None, max_duration: float | None
) -> DataConfig:
    changes: dict[str, object] = {}
    if corpus_dir is not None:
        changes["corpus_dir"] = corpus_dir
    if max_duration is not None:
        changes["max_duration"] = max_duration
        # A batch must still hold the longest utterance the config admits.
        changes["max_utterance_seconds"] = min(data_config.max_utterance_seconds, max_duration)
    return dataclasses.replace(data_config, **changes) if changes else data_config
