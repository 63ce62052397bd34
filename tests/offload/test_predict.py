"""Next-layer predictions, checked on hand-made routing records."""

import numpy as np
import pytest

from omnirouter.analysis.records import RoutingRecords
from omnirouter.offload.predict import PREDICTORS, predictions


def records(experts_LN, offsets_U, lookahead_LN=None, num_experts: int = 3) -> RoutingRecords:
    experts_LN = np.asarray(experts_LN, dtype=np.int16)
    layers = experts_LN.shape[0]
    return RoutingRecords(
        name="hand",
        family="omni",
        layers=tuple(range(layers)),
        router_ids=(0,) * layers,
        num_experts=num_experts,
        stack_frames=4,
        cut_ids=tuple(f"u{index}" for index in range(len(offsets_U) - 1)),
        experts_LN=experts_LN,
        energy_N=np.zeros(experts_LN.shape[1], np.float32),
        offsets_U=np.asarray(offsets_U, dtype=np.int64),
        lookahead_LN=None if lookahead_LN is None else np.asarray(lookahead_LN, np.int16),
    )


TRACE = [[0, 1, 2, 2], [1, 1, 0, 2], [2, 0, 0, 1]]  # 3 layers, 4 steps
OFFSETS = [0, 2, 4]  # two utterances of two steps


def test_same_expert_predicts_the_current_layers_choice() -> None:
    predicted = predictions(records(TRACE, OFFSETS), "same-expert")
    np.testing.assert_array_equal(predicted, [[-1] * 4, TRACE[0], TRACE[1]])


def test_previous_step_predicts_the_next_layers_last_choice_within_an_utterance() -> None:
    predicted = predictions(records(TRACE, OFFSETS), "previous-step")
    np.testing.assert_array_equal(predicted, [[-1] * 4, [-1, 1, -1, 0], [-1, 2, -1, 0]])


def test_lookahead_shifts_the_recorded_predictions_to_the_layer_they_predict() -> None:
    lookahead = [[2, 2, 1, 1], [0, 0, 0, 0], [-1] * 4]
    predicted = predictions(records(TRACE, OFFSETS, lookahead), "lookahead")
    np.testing.assert_array_equal(predicted, [[-1] * 4, lookahead[0], lookahead[1]])
    # Records without lookahead give no predictions at all.
    assert (predictions(records(TRACE, OFFSETS), "lookahead") == -1).all()


def test_transition_is_fitted_on_the_other_utterances_only() -> None:
    # Utterance 0 maps expert 0 → 2 between layers 0 and 1; utterance 1 maps 0 → 1.
    experts = [[0, 0, 0, 0], [2, 2, 1, 1]]
    predicted = predictions(records(experts, OFFSETS), "transition")
    # Each utterance's prediction comes from the other one's mapping.
    np.testing.assert_array_equal(predicted[1], [1, 1, 2, 2])
    assert (predicted[0] == -1).all()


def test_transition_gives_no_prediction_for_an_expert_the_other_fold_never_used() -> None:
    experts = [[0, 0, 1, 1], [2, 2, 0, 0]]  # utterance 0 uses expert 0 only, utterance 1 only 1
    predicted = predictions(records(experts, OFFSETS), "transition")
    assert (predicted == -1).all()


def test_an_empty_last_utterance_is_no_trouble() -> None:
    predicted = predictions(records(TRACE, [0, 2, 4, 4]), "previous-step")
    np.testing.assert_array_equal(predicted[1], [-1, 1, -1, 0])


def test_unknown_predictor_is_refused() -> None:
    with pytest.raises(ValueError, match="known: " + ", ".join(PREDICTORS)):
        predictions(records(TRACE, OFFSETS), "oracle")
