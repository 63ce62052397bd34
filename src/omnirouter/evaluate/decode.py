"""Greedy CTC decoding: the best label per step, repeats merged, blanks dropped.

Shape legend: B batch, T output steps, V vocabulary (blank included).
"""

from __future__ import annotations

import torch

from omnirouter.model.ctc_model import BLANK_ID


def greedy_ctc_decode(
    log_probs_BTV: torch.Tensor, lengths_B: torch.Tensor, blank_id: int = BLANK_ID
) -> list[list[int]]:
    """Token ids of every utterance in the batch.

    Steps at or past an utterance's length are padding and never decoded. A label repeated
    on consecutive steps is one token; the same label twice with a blank between is two
    (Graves et al. 2006, the CTC collapsing function B).
    """
    if log_probs_BTV.dim() != 3:
        raise ValueError(f"expected log-probs of shape (B, T, V), got {tuple(log_probs_BTV.shape)}")
    if lengths_B.shape != log_probs_BTV.shape[:1]:
        raise ValueError(
            f"lengths of shape {tuple(lengths_B.shape)} do not match a batch of "
            f"{log_probs_BTV.shape[0]}"
        )
    if log_probs_BTV.shape[1] == 0:
        return [[] for _ in range(log_probs_BTV.shape[0])]
    best_BT = log_probs_BTV.argmax(dim=-1)
    steps_T = torch.arange(best_BT.shape[1], device=best_BT.device)
    valid_BT = steps_T.unsqueeze(0) < lengths_B.to(best_BT.device).unsqueeze(1)
    # A step starts a new token when its label differs from the previous step's label.
    previous_BT = torch.nn.functional.pad(best_BT[:, :-1], (1, 0), value=-1)
    keep_BT = valid_BT & (best_BT != blank_id) & (best_BT != previous_BT)
    best_BT, keep_BT = best_BT.cpu(), keep_BT.cpu()
    return [row[keep].tolist() for row, keep in zip(best_BT, keep_BT)]
