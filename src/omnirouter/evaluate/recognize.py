"""Running a model over batches and reading off what it recognised.

One path serves dev validation during training, `omnirouter eval`, transcription and the
routing analysis: the model runs in eval mode under `torch.inference_mode` (bf16 autocast on
CUDA only), then greedy CTC decoding and detokenisation. `on_output` sees every batch's
`ModelOutput`, so an analysis can keep the routing without a second pass.

Shape legend: B batch, T frames, F feature bins.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from omnirouter.data.loader import EvalLoader
from omnirouter.evaluate.decode import greedy_ctc_decode
from omnirouter.evaluate.proposals import Aggregate, ProposalConfig, forward_with_proposals
from omnirouter.evaluate.wer import Recognition, SetScore, score_set
from omnirouter.model.ctc_model import CtcModel, ModelOutput
from omnirouter.model.routing import RoutingIntervention, RoutingOverride, RoutingProposals

if TYPE_CHECKING:
    from omnirouter.data.batch import Batch
    from omnirouter.data.tokenizer import Tokenizer
    from omnirouter.evaluate.beam import BeamDecoder

OutputCallback = Callable[["Batch", ModelOutput], None]


@dataclass(frozen=True)
class DecodedBatch:
    output: ModelOutput
    token_ids: list[list[int]]  # per utterance, after greedy CTC decoding


@contextlib.contextmanager
def inference_context(model: CtcModel, device: torch.device | str) -> Iterator[None]:
    """Eval mode, no autograd, bf16 autocast on CUDA; the model's train/eval mode is restored
    afterwards, so the training loop can validate in the middle of an epoch."""
    device_type = torch.device(device).type
    was_training = model.training
    model.eval()
    try:
        with (
            torch.inference_mode(),
            torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda"),
        ):
            yield
    finally:
        model.train(was_training)


def decode_features(
    model: CtcModel,
    features_BTF: torch.Tensor,
    feature_lens_B: torch.Tensor,
    override: RoutingIntervention | None = None,
    aggregate: Aggregate = Aggregate.probability,
) -> DecodedBatch:
    """Forward and greedy decoding; call inside `inference_context`. With routed proposals
    as the override, their posteriors are aggregated (`aggregate`) and decoded."""
    if isinstance(override, RoutingProposals):
        output = forward_with_proposals(model, features_BTF, feature_lens_B, override, aggregate)
    else:
        output = model(features_BTF, feature_lens_B, override=override)
    return DecodedBatch(output, greedy_ctc_decode(output.log_probs_BTV, output.lengths_B))


def utterance_log_probs(output: ModelOutput) -> list[np.ndarray]:
    """Each utterance's (T, V) log-probabilities, padding removed, as float32 arrays: what the
    beam search (`evaluate.beam`) reads."""
    return [
        output.log_probs_BTV[row, : int(length)].float().cpu().numpy()
        for row, length in enumerate(output.lengths_B)
    ]


def recognize(
    model: CtcModel,
    batches: Iterable[Batch],
    tokenizer: Tokenizer,
    device: torch.device | str,
    override: RoutingOverride | None = None,
    on_output: OutputCallback | None = None,
    progress: bool = True,
    description: str = "recognising",
    proposals: ProposalConfig | None = None,
    beam: BeamDecoder | None = None,
) -> list[Recognition]:
    """The model's transcript of every utterance in `batches`, beside its reference.
    `proposals`: decode several routed proposals per frame (seeded once per call).
    `beam`: beam search (`evaluate.beam`) instead of greedy decoding, over all utterances at
    once after the model has run, so that its worker pool decodes them in parallel."""
    recognitions: list[Recognition] = []
    log_probs: list[np.ndarray] = []  # per utterance (T, V), kept for the beam search
    intervention: RoutingIntervention | None = override
    aggregate = Aggregate.probability
    if proposals is not None:
        if override is not None:
            raise ValueError("a routing override and routed proposals cannot be combined")
        intervention, aggregate = proposals.routing(), proposals.aggregate
    # An evaluation loader knows its length only when asked (it reads the manifest).
    total = batches.num_batches() if progress and isinstance(batches, EvalLoader) else None
    with inference_context(model, device):
        bar = tqdm(batches, desc=description, unit="batch", total=total, disable=not progress)
        for batch in bar:
            batch = batch.to(device)
            decoded = decode_features(
                model, batch.features_BTF, batch.feature_lens_B, intervention, aggregate
            )
            if on_output is not None:
                on_output(batch, decoded.output)
            if beam is not None:
                log_probs.extend(utterance_log_probs(decoded.output))
            recognitions.extend(
                Recognition(cut_id, reference, tokenizer.decode(token_ids))
                for cut_id, reference, token_ids in zip(
                    batch.cut_ids, batch.texts, decoded.token_ids, strict=True
                )
            )
    if beam is not None:
        texts = beam.decode(log_probs)
        recognitions = [
            Recognition(recognition.cut_id, recognition.reference, text)
            for recognition, text in zip(recognitions, texts, strict=True)
        ]
    return recognitions


__all__ = [
    "DecodedBatch",
    "Recognition",
    "SetScore",
    "decode_features",
    "inference_context",
    "recognize",
    "score_set",
    "utterance_log_probs",
]
