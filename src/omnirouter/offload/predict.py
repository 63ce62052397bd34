"""Speculative predictions of the next MoE layer's expert, made while the current layer runs.

Each predictor gives `predictions_LN[l, n]`: the expert layer l is expected to use at step n,
known at layer l-1 of that step (row 0 is -1: the first MoE layer is demand-fetched; its
expert of the previous step is usually still cached anyway). -1 means no prediction.

    same-expert     the current layer's expert: what a shared router suggests, since the same
                    router sees similar hidden states in consecutive layers
    lookahead       the next layer's router applied to the hidden state leaving the current
                    layer's block (`RoutingRecords.lookahead_LN`; for Omni-router the same router)
    previous-step   the next layer's expert at the previous step of the utterance
    transition      the most frequent next-layer expert after the current one, counted on the
                    other half of the utterances (two-fold cross-fitting, so that no prediction
                    is fitted on the utterance it predicts). Our addition: it gives Switch,
                    whose expert numbers mean nothing across layers, a fair learnt mapping.

Shape legend: L MoE layers, N steps of all utterances, U utterances, E experts.
"""

from __future__ import annotations

import numpy as np

from omnirouter.analysis.records import RoutingRecords

PREDICTORS = ("same-expert", "lookahead", "previous-step", "transition")


def predictions(records: RoutingRecords, predictor: str) -> np.ndarray:
    """(L, N) int64 predictions of `predictor` (one of PREDICTORS) for the records' trace."""
    experts_LN = records.experts_LN.astype(np.int64)
    predicted_LN = np.full(experts_LN.shape, -1, dtype=np.int64)
    if predictor == "same-expert":
        predicted_LN[1:] = experts_LN[:-1]
    elif predictor == "lookahead":
        predicted_LN[1:] = records.lookahead()[:-1]
    elif predictor == "previous-step":
        predicted_LN[1:, 1:] = experts_LN[1:, :-1]
        starts_U = records.offsets_U[:-1]
        predicted_LN[:, starts_U[starts_U < records.num_steps]] = -1  # a new utterance's start
    elif predictor == "transition":
        predicted_LN[1:] = _cross_fitted_transitions(records)
    else:
        raise ValueError(f"unknown predictor {predictor!r}; known: {', '.join(PREDICTORS)}")
    return predicted_LN


def _cross_fitted_transitions(records: RoutingRecords) -> np.ndarray:
    """(L-1, N) the likeliest expert of layer l+1 given layer l's, fitted on the other fold."""
    experts_LN = records.experts_LN.astype(np.int64)
    num_layers, num_steps = experts_LN.shape
    num_experts = records.num_experts
    utterance_N = np.repeat(
        np.arange(len(records.offsets_U) - 1), np.diff(records.offsets_U).astype(np.int64)
    )
    fold_N = utterance_N % 2
    predicted_LN = np.full((max(num_layers - 1, 0), num_steps), -1, dtype=np.int64)
    for layer in range(num_layers - 1):
        current_N, following_N = experts_LN[layer], experts_LN[layer + 1]
        for fold in (0, 1):
            fitted = fold_N != fold
            counts_EE = np.zeros((num_experts, num_experts), dtype=np.int64)
            np.add.at(counts_EE, (current_N[fitted], following_N[fitted]), 1)
            # An expert never seen in the fitted fold gives no prediction.
            likeliest_E = np.where(counts_EE.sum(axis=1) > 0, counts_EE.argmax(axis=1), -1)
            held_out = ~fitted
            predicted_LN[layer, held_out] = likeliest_E[current_N[held_out]]
    return predicted_LN
