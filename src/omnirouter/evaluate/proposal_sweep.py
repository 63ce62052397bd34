"""`omnirouter eval EXP --proposals 1,2,4,8`: WER and CER against the number of routed
proposals per frame, with the measured cost of each relative to K = 1.

    OUT/k<K>/            the ordinary eval files of each K (errs, recogs, wer tables)
    OUT/sweep.md, OUT/sweep.json

OUT defaults to EXP/eval/proposals-<mode>-t<τ>-<aggregate>.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnirouter.evaluate.normalize import WHISPER_ENGLISH, get_normalizer
from omnirouter.evaluate.proposals import ProposalConfig
from omnirouter.evaluate.suite import evaluate_sets, experiment_eval_dir, load_eval_sets
from omnirouter.evaluate.wer import SetScore
from omnirouter.model.routing import ProposalMode

SWEEP_STEM = "sweep"


@dataclass(frozen=True)
class SweepPoint:
    config: ProposalConfig
    scores: tuple[SetScore, ...]
    seconds: float  # wall time of recognition over all sets


@dataclass(frozen=True)
class ProposalSweep:
    model: str
    family: str
    points: tuple[SweepPoint, ...]
    command: str = ""

    @property
    def set_names(self) -> tuple[str, ...]:
        return tuple(score.name for score in self.points[0].scores) if self.points else ()

    def relative_cost(self, point: SweepPoint) -> float:
        """Recognition time relative to K = 1 (to the first point if K = 1 was not run)."""
        reference = next((p for p in self.points if p.config.count == 1), self.points[0])
        return point.seconds / reference.seconds if reference.seconds > 0 else float("nan")


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
    from omnirouter.train.checkpoint import load_inference_model

    normalizer = get_normalizer(normalizer_name)
    loaded = load_inference_model(path, device=device)
    if not loaded.model_config.is_moe:
        raise ValueError(f"{path} is a dense model: routed proposals need a mixture of experts")
    directory = (
        Path(out_dir)
        if out_dir
        else experiment_eval_dir(path, loaded) / (sweep_directory_name(config))
    )
    _, eval_sets = load_eval_sets(loaded, sets, corpus_dir, max_duration)
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
    sweep = ProposalSweep(str(path), loaded.model_config.family.value, tuple(points), command)
    return sweep, write_sweep(sweep, directory)


def sweep_markdown(sweep: ProposalSweep) -> str:
    first = sweep.points[0].config
    how = (
        "each proposal sends a frame to its next-ranked expert"
        if first.mode is ProposalMode.ranked
        else f"proposals 1…K−1 route by Gumbel-top-k of the router logits at τ = {first.temperature:g}"
    )
    lines = [
        f"# Routed proposals: {sweep.model}",
        "",
        f"K proposals per frame in one forward of a K-times batch; proposal 0 is the ordinary "
        f"routing, {how}; the CTC posteriors are aggregated by {first.aggregate.value} "
        f"averaging before greedy decoding (noise seed {first.seed}).",
        "",
        "| K | "
        + " | ".join(f"{name} WER / CER %" for name in sweep.set_names)
        + " | recognition s | cost vs K=1 |",
        "|---|" + "---|" * len(sweep.set_names) + "---|---|",
    ]
    for point in sweep.points:
        cells = [f"{100 * s.wer:.2f} / {100 * s.cer:.2f}" for s in point.scores]
        lines.append(
            f"| {point.config.count} | "
            + " | ".join(cells)
            + f" | {point.seconds:.1f} | {sweep.relative_cost(point):.2f}× |"
        )
    if sweep.command:
        lines += ["", f"Command: `{sweep.command}`"]
    return "\n".join(lines) + "\n"


def sweep_document(sweep: ProposalSweep) -> dict[str, Any]:
    return {
        "model": sweep.model,
        "family": sweep.family,
        "command": sweep.command,
        "points": [
            {
                "count": point.config.count,
                "temperature": point.config.temperature,
                "mode": point.config.mode.value,
                "aggregate": point.config.aggregate.value,
                "seed": point.config.seed,
                "seconds": point.seconds,
                "relative_cost": sweep.relative_cost(point),
                "sets": {s.name: {"wer": s.wer, "cer": s.cer} for s in point.scores},
            }
            for point in sweep.points
        ],
    }


def write_sweep(sweep: ProposalSweep, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{SWEEP_STEM}.json").write_text(
        json.dumps(sweep_document(sweep), indent=1) + "\n"
    )
    markdown = directory / f"{SWEEP_STEM}.md"
    markdown.write_text(sweep_markdown(sweep))
    return markdown
