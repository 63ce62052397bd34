"""Tuning the beam search's LM weight and word score on a dev set, and using what was tuned.

`tune_lm` runs the model over the set once, keeps its log-probabilities (cached in
EXP/eval-lm/), then re-runs only the beam search over a small grid of (lm_weight, word_score)
and keeps the pair with the lowest WER. The result goes into the LM's tuning.json under the
model's experiment directory (relative to the LM's) and the search (lexicon or open);
`beam_config` reads it back, so `omnirouter eval --decoder beam` uses the tuned values unless
given others. The grid's last step times the beam search with the
tuned values on one core: its real-time factor (seconds of decoding per second of audio).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnirouter.evaluate.beam import BeamConfig, BeamDecoder, model_key, search_name
from omnirouter.evaluate.lm import LM_DIR, lm_files
from omnirouter.evaluate.model_file import LoadedModel, load_inference_model
from omnirouter.evaluate.normalize import WHISPER_ENGLISH, get_normalizer
from omnirouter.evaluate.recognize import recognize, utterance_log_probs
from omnirouter.evaluate.suite import LM_EVAL_DIR, load_eval_sets
from omnirouter.evaluate.wer import Recognition, score_set
from omnirouter.jsonio import read_json, write_json

logger = logging.getLogger(__name__)

# The default grid, wide enough for the demo's models under both searches (docs/lm-decoding.md:
# their optima lie at LM weight 0.4-1 and word score 1-4).
LM_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.5)
WORD_SCORES = (0.0, 1.0, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class GridPoint:
    lm_weight: float
    word_score: float
    wer: float
    cer: float


@dataclass(frozen=True)
class TuningResult:
    model: str  # the experiment directory relative to the LM's, the key in tuning.json
    search: str  # "lexicon" or "open", the key under the model's
    checkpoint: str
    step: int
    set_name: str
    beam_size: int
    lm_weight: float
    word_score: float
    wer: float  # with the tuned values
    greedy_wer: float  # the same log-probabilities decoded greedily
    grid: tuple[GridPoint, ...]
    audio_seconds: float
    one_core_seconds: float  # the beam search with the tuned values, one process
    real_time_factor: float  # one_core_seconds / audio_seconds


@dataclass(frozen=True)
class SetPosteriors:
    """A set's log-probabilities, one (T, V) array per utterance, and what scores them."""

    cut_ids: tuple[str, ...]
    references: tuple[str, ...]
    greedy: tuple[str, ...]
    log_probs: tuple[np.ndarray, ...]
    audio_seconds: float


def set_posteriors(
    experiment_dir: str | Path, set_name: str, device: str = "cpu"
) -> tuple[SetPosteriors, LoadedModel]:
    """The model's log-probabilities of a set, from EXP/eval-lm/ when cached for the same
    checkpoint, else computed and cached. Returns them and the loaded model."""
    loaded = load_inference_model(experiment_dir, device=device)
    if loaded.experiment_dir is None:
        raise ValueError(f"{experiment_dir} is not inside an experiment directory")
    cache = loaded.experiment_dir / LM_EVAL_DIR / f"logprobs-{set_name}-step{loaded.step}.npz"
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["checkpoint"]) == str(loaded.checkpoint_path):
            count = len(stored["cut_ids"])
            return SetPosteriors(
                tuple(str(item) for item in stored["cut_ids"]),
                tuple(str(item) for item in stored["references"]),
                tuple(str(item) for item in stored["greedy"]),
                tuple(stored[f"utt{index}"] for index in range(count)),
                float(stored["audio_seconds"]),
            ), loaded
    _, (eval_set,) = load_eval_sets(loaded, [set_name])
    log_probs: list[np.ndarray] = []
    frames = [0]

    def keep(batch, output) -> None:  # type: ignore[no-untyped-def]
        frames[0] += int(batch.feature_lens_B.sum())
        log_probs.extend(utterance_log_probs(output))

    recognitions = recognize(
        loaded.model, eval_set.batches, loaded.tokenizer, device, on_output=keep
    )
    posteriors = SetPosteriors(
        tuple(item.cut_id for item in recognitions),
        tuple(item.reference for item in recognitions),
        tuple(item.hypothesis for item in recognitions),
        tuple(log_probs),
        frames[0] * loaded.data_config.features.frame_shift_seconds,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        cache,
        checkpoint=str(loaded.checkpoint_path),
        cut_ids=np.array(posteriors.cut_ids),
        references=np.array(posteriors.references),
        greedy=np.array(posteriors.greedy),
        audio_seconds=posteriors.audio_seconds,
        **{f"utt{index}": array for index, array in enumerate(posteriors.log_probs)},
    )
    return posteriors, loaded


def tune_lm(
    experiment_dir: str | Path,
    lm_path: str | Path | None = None,
    set_name: str = "dev",
    device: str = "cpu",
    beam_size: int = BeamConfig.beam_size,
    lm_weights: Sequence[float] = LM_WEIGHTS,
    word_scores: Sequence[float] = WORD_SCORES,
    lexicon: bool = True,
) -> TuningResult:
    """`omnirouter lm tune`: the grid search of the module docstring; the result is stored
    in the LM's tuning.json and returned."""
    posteriors, loaded = set_posteriors(experiment_dir, set_name, device)
    files = lm_files(lm_path or Path(loaded.data_config.corpus_dir) / LM_DIR)
    normalizer = get_normalizer(WHISPER_ENGLISH)
    decoder = BeamDecoder.from_tokenizer(
        loaded.tokenizer,
        files.directory,
        BeamConfig(beam_size=beam_size, lexicon=lexicon),
    )

    def score(hypotheses: Sequence[str]) -> tuple[float, float]:
        recognitions = [
            Recognition(cut_id, reference, hypothesis)
            for cut_id, reference, hypothesis in zip(
                posteriors.cut_ids, posteriors.references, hypotheses
            )
        ]
        result = score_set(set_name, recognitions, normalizer)
        return result.wer, result.cer

    greedy_wer, _ = score(posteriors.greedy)
    grid = []
    for lm_weight in lm_weights:
        for word_score in word_scores:
            decoder.set_weights(lm_weight, word_score)
            wer, cer = score(decoder.decode(posteriors.log_probs))
            grid.append(GridPoint(lm_weight, word_score, wer, cer))
            logger.info("lm_weight %g word_score %g: WER %.2f%%", lm_weight, word_score, 100 * wer)
    best = min(grid, key=lambda point: (point.wer, point.cer, point.lm_weight))
    for name, values in (("lm_weight", lm_weights), ("word_score", word_scores)):
        value = getattr(best, name)
        at_edge = value == max(values) or (value == min(values) and value != 0)
        if len(values) > 1 and at_edge:  # 0 is a natural lower end (no LM, no bonus)
            logger.warning("the best %s, %g, is at the edge of the grid: widen it", name, value)
    decoder.set_weights(best.lm_weight, best.word_score)
    started = time.perf_counter()
    decoder.decode(posteriors.log_probs, processes=1)
    one_core = time.perf_counter() - started
    decoder.close()
    result = TuningResult(
        model=model_key(loaded.experiment_dir, files),
        search=search_name(lexicon),
        checkpoint=str(loaded.checkpoint_path),
        step=loaded.step,
        set_name=set_name,
        beam_size=beam_size,
        lm_weight=best.lm_weight,
        word_score=best.word_score,
        wer=best.wer,
        greedy_wer=greedy_wer,
        grid=tuple(grid),
        audio_seconds=posteriors.audio_seconds,
        one_core_seconds=one_core,
        real_time_factor=one_core / max(posteriors.audio_seconds, 1e-9),
    )
    stored = read_json(files.tuning, "LM tuning file") if files.tuning.is_file() else {}
    entry = stored.get(result.model)
    searches = {key: value for key, value in (entry or {}).items() if key in ("lexicon", "open")}
    stored[result.model] = {**searches, result.search: result}
    write_json(files.tuning, stored)
    return result


__all__ = ["LM_EVAL_DIR", "TuningResult", "set_posteriors", "tune_lm"]
