"""Trained experiments as analysis `Subject`s: the model, the set's loader, WER scoring and
the training metrics, through the same loading and recognition path as `omnirouter eval`."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.lookahead import lookahead_routing
from omnirouter.analysis.measure import Subject
from omnirouter.analysis.permutation import OnOutput
from omnirouter.analysis.training import read_loss_curve
from omnirouter.data.loader import build_eval_loader, eval_cuts
from omnirouter.evaluate.model_file import load_inference_model
from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.recognize import recognize, score_set
from omnirouter.model.routing import RoutingOverride


def experiment_subjects(
    experiments: Sequence[str | Path], config: AnalysisConfig
) -> Iterator[Subject]:
    """Each experiment's model as a `Subject`, loaded only when the previous one is done."""
    for experiment in experiments:
        yield load_subject(experiment, config)


def experiment_name(experiment_dir: Path) -> str:
    """The directory's name, with its parent's for the run directories of an experiment
    (exp/demo/omni/seed0 → omni-seed0), which are all called seed<k>."""
    if re.fullmatch(r"seed\d+", experiment_dir.name) and experiment_dir.parent.name:
        return f"{experiment_dir.parent.name}-{experiment_dir.name}"
    return experiment_dir.name


def load_subject(experiment: str | Path, config: AnalysisConfig) -> Subject:
    """A trained experiment's model (an experiment directory or a checkpoint in one), its
    `config.set_name` loader and its WER evaluation. The name is the experiment directory's."""
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    normalizer = get_normalizer(config.normalizer)  # fail before loading anything if missing
    loaded = load_inference_model(experiment, device=device)
    experiment_dir = Path(loaded.experiment_dir) if loaded.experiment_dir else None
    name = experiment_name(experiment_dir) if experiment_dir else Path(experiment).stem
    data_config = loaded.data_config
    if config.corpus_dir is not None:
        data_config = dataclasses.replace(data_config, corpus_dir=config.corpus_dir)
    cuts = eval_cuts(data_config, config.set_name)
    if config.max_utterances:
        cuts = cuts.subset(first=config.max_utterances)
    loader = build_eval_loader(data_config, cuts, loaded.tokenizer)

    def evaluate(override: RoutingOverride | None, on_output: OnOutput | None) -> float:
        label = name if override is None else f"{name} p={override.probability:g}"
        # The pass that keeps routing records also keeps the prefetcher's lookahead.
        capture = lookahead_routing(loaded.model) if on_output else contextlib.nullcontext()
        with capture:
            recognitions = recognize(
                loaded.model,
                loader,
                loaded.tokenizer,
                device,
                override,
                on_output,
                description=label,
            )
        return score_set(config.set_name, recognitions, normalizer).wer

    return Subject(
        name=name,
        family=loaded.model_config.family,
        experiment=str(experiment_dir or experiment),
        stack_frames=loaded.model_config.stack_frames,
        cut_ids=tuple(cut.id for cut in cuts),
        evaluate=evaluate,
        loss_curve=read_loss_curve(name, experiment_dir) if experiment_dir else None,
        frame_shift_seconds=data_config.features.frame_shift_seconds,
    )
