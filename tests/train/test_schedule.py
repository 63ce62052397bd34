"""The learning-rate schedule against values worked out by hand from the paper's description."""

import math

import pytest

from omnirouter.train.schedule import ScheduleConfig, lr_multiplier, scaled

PAPER = ScheduleConfig(
    warmup_steps=64_000, cosine_steps=60_000, cosine_final_ratio=0.1, step_decay_every=50_000
)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 1 / 64_000),
        (31_999, 0.5),
        (63_999, 1.0),
        (64_000, 1.0),  # cosine starts at the peak
        (94_000, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2))),  # half-way: 0.55
        (123_999, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 59_999 / 60_000))),
        (124_000, 0.1),  # end of the cosine
        (173_999, 0.1),
        (174_000, 0.05),  # first halving
        (224_000, 0.025),
        (1_000_000, 0.1 * 0.5 ** ((1_000_000 - 124_000) // 50_000)),
    ],
)
def test_paper_schedule_values(step: int, expected: float) -> None:
    assert lr_multiplier(step, PAPER) == pytest.approx(expected, rel=1e-12)


def test_schedule_is_continuous_where_phases_meet() -> None:
    before, after = lr_multiplier(63_999, PAPER), lr_multiplier(64_000, PAPER)
    assert before == after == 1.0
    assert lr_multiplier(123_999, PAPER) == pytest.approx(0.1, abs=1e-8)


def test_scaled_schedule_keeps_the_shape() -> None:
    small = scaled(PAPER, 0.001)
    assert (small.warmup_steps, small.cosine_steps, small.step_decay_every) == (64, 60, 50)
    assert lr_multiplier(63, small) == 1.0
    assert lr_multiplier(124, small) == pytest.approx(0.1)
