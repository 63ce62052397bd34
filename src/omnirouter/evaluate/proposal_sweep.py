"""`omnirouter eval EXP --proposals 1,2,4,8`: WER and CER against the number of routed
proposals per frame, with the measured cost of each relative to K = 1.

    OUT/k<K>/            the ordinary eval files of each K (errs, recogs, wer tables)
    OUT/sweep.md, OUT/sweep.json

OUT defaults to EXP/eval/proposals-<mode>-t<τ>-<aggregate>.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omnirouter.data.batch import Batch
from omnirouter.evaluate.model_file import load_inference_model
from omnirouter.evaluate.normalize import WHISPER_ENGLISH, get_normalizer
from omnirouter.evaluate.proposals import ProposalConfig
from omnirouter.evaluate.recognize import decode_features, inference_context
from omnirouter.evaluate.suite import evaluate_sets, experiment_eval_dir, load_eval_sets
from omnirouter.evaluate.wer import SetScore
from omnirouter.jsonio import write_json
from omnirouter.model.config import Family
from omnirouter.model.ctc_model import CtcModel
from omnirouter.model.routing import ProposalMode

SWEEP_STEM = "sweep"


@dataclass(frozen=True)
class SweepPoint:
    config: ProposalConfig
    scores: tuple[SetScore, ...]
    seconds: float  # wall time of recognition over all sets (a single pass: noisy)
    forward_seconds: float = float("nan")  # median forward of one batch, timed interleaved


@dataclass(frozen=True)
class ProposalSweep:
    model: str
    family: Family
    points: tuple[SweepPoint, ...]
    command: str = ""
    normalizer: str = ""  # the text normaliser of the scores
    corpus_dir: str = ""  # where the sets were read from
    # Of the routing decisions (valid frames × MoE layers) of proposals 1…K−1, the share that
    # differs from proposal 0's, at the largest K: how diverse the proposals are.
    changed_fraction: float = float("nan")

    @property
    def set_names(self) -> tuple[str, ...]:
        return tuple(score.name for score in self.points[0].scores) if self.points else ()

    def relative_cost(self, point: SweepPoint) -> float:
        """Forward time relative to K = 1 (to the first point if K = 1 was not run), from the
        interleaved timing of one batch."""
        reference = next((p for p in self.points if p.config.count == 1), self.points[0])
        return point.forward_seconds / reference.forward_seconds


def time_forwards(
    model: CtcModel,
    batch: Batch,
    configs: Sequence[ProposalConfig],
    device: str,
    repeats: int = 5,
) -> list[float]:
    """Median seconds of one decoding forward of `batch` with each config, the configs
    interleaved within every repeat (after one untimed warm-up round), so that a machine's
    drift in speed hits them alike."""
    batch = batch.to(device)
    timings: list[list[float]] = [[] for _ in configs]
    with inference_context(model, device):
        for repeat in range(repeats + 1):
            for index, config in enumerate(configs):
                routing = config.routing()
                _synchronize(device)
                started = time.perf_counter()
                decode_features(
                    model, batch.features_BTF, batch.feature_lens_B, routing, config.aggregate
                )
                _synchronize(device)
                if repeat:  # the first round warms up
                    timings[index].append(time.perf_counter() - started)
    return [statistics.median(values) for values in timings]


def changed_fraction(model: CtcModel, batch: Batch, config: ProposalConfig, device: str) -> float:
    """Share of the routing decisions of proposals 1…K−1 that differ from proposal 0's."""
    if config.count < 2:
        return 0.0
    batch = batch.to(device)
    count, size = config.count, batch.features_BTF.shape[0]
    with inference_context(model, device):
        output = model(
            batch.features_BTF.repeat(count, 1, 1),
            batch.feature_lens_B.repeat(count),
            override=config.routing(),
        )
    changed = total = 0
    for info in output.routing:
        # Each frame's set of experts (sorted), as a (K, B, T, k) map; padding never compared.
        experts_MTK = info.frame_map(info.experts_NK.sort(dim=1).values)
        experts_KBTK = experts_MTK.view(count, size, *experts_MTK.shape[1:])
        valid_BT = info.valid_BT[:size]
        for proposal in range(1, count):
            differs_BT = (experts_KBTK[proposal] != experts_KBTK[0]).any(dim=-1)
            changed += int(differs_BT[valid_BT].sum())
            total += int(valid_BT.sum())
    return changed / total if total else float("nan")


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def sweep_directory_name(config: ProposalConfig) -> str:
    if config.mode is ProposalMode.ranked:
        return f"proposals-ranked-{config.aggregate.value}"
    return f"proposals-gumbel-t{config.temperature:g}-{config.aggregate.value}"


def sweep_checkpoint(
    path: str | Path,
    counts: Sequence[int],
    config: ProposalConfig,
    sets: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    corpus_dir: str | None = None,
    max_duration: float | None = None,
    device: str = "cpu",
    normalizer_name: str = WHISPER_ENGLISH,
    command: str = "",
) -> tuple[ProposalSweep, Path]:
    """Evaluate a trained model with K = each of `counts` proposals; returns the sweep and the
    path of its markdown table. The model and the loaders are built once."""
    normalizer = get_normalizer(normalizer_name)
    loaded = load_inference_model(path, device=device)
    if not loaded.model_config.is_moe:
        raise ValueError(f"{path} is a dense model: routed proposals need a mixture of experts")
    directory = (
        Path(out_dir)
        if out_dir
        else experiment_eval_dir(path, loaded) / sweep_directory_name(config)
    )
    data_config, eval_sets = load_eval_sets(loaded, sets, corpus_dir, max_duration)
    points = []
    for count in counts:
        point_config = dataclasses.replace(config, count=count)
        result = evaluate_sets(
            loaded.model,
            loaded.tokenizer,
            eval_sets,
            directory / f"k{count}",
            device,
            normalizer,
            model_name=f"{path} ({point_config.label})",
            command=command,
            extra={"checkpoint": str(loaded.checkpoint_path), "step": loaded.step},
            proposals=point_config,
        )
        points.append(SweepPoint(point_config, result.scores, result.recognition_seconds))
    first_batch = next(iter(eval_sets[0].batches))
    configs = [point.config for point in points]
    timed = time_forwards(loaded.model, first_batch, configs, device)
    points = [dataclasses.replace(p, forward_seconds=t) for p, t in zip(points, timed)]
    diversity = changed_fraction(
        loaded.model, first_batch, max(configs, key=lambda c: c.count), device
    )
    sweep = ProposalSweep(
        str(path),
        loaded.model_config.family,
        tuple(points),
        command,
        normalizer_name,
        str(Path(data_config.corpus_dir).resolve()),
        diversity,
    )
    return sweep, save_sweep(sweep, directory)


def sweep_document(sweep: ProposalSweep) -> dict[str, Any]:
    return {
        "model": sweep.model,
        "family": sweep.family,
        "command": sweep.command,
        "normalizer": sweep.normalizer,
        "corpus_dir": sweep.corpus_dir,
        "changed_fraction": sweep.changed_fraction,
        "points": [
            {
                "count": point.config.count,
                "temperature": point.config.temperature,
                "mode": point.config.mode.value,
                "aggregate": point.config.aggregate.value,
                "seed": point.config.seed,
                "seconds": point.seconds,
                "forward_seconds": point.forward_seconds,
                "relative_cost": sweep.relative_cost(point),
                "sets": {s.name: {"wer": s.wer, "cer": s.cer} for s in point.scores},
            }
            for point in sweep.points
        ],
    }


def save_sweep(sweep: ProposalSweep, directory: str | Path) -> Path:
    """`sweep.json` in `directory`; `report.tables` writes `sweep.md` beside it."""
    return write_json(Path(directory) / f"{SWEEP_STEM}.json", sweep_document(sweep))
