from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from omnirouter.data.augment import (
    MaskPlan,
    Span,
    SpecAugmentConfig,
    apply_masks,
    draw_masks,
    spec_augment,
    time_warp,
)

PAPER = SpecAugmentConfig()  # §V-C: 2 frequency masks ≤ 30, 10 time masks ≤ 50 and ≤ 10 %


@pytest.mark.parametrize("num_frames", [0, 7, 120, 300, 2000])
def test_mask_counts_and_widths(num_frames: int) -> None:
    time_bound = min(50, int(0.1 * num_frames))
    for seed in range(50):
        plan = draw_masks(num_frames, 80, PAPER, torch.Generator().manual_seed(seed))
        assert len(plan.time_spans) == 10 and len(plan.freq_spans) == 2
        for span in plan.time_spans:
            assert 0 <= span.width <= time_bound
            assert span.start >= 0 and span.end <= num_frames
        for span in plan.freq_spans:
            assert 0 <= span.width <= 30
            assert span.start >= 0 and span.end <= 80


def test_widths_reach_their_bounds() -> None:
    time_widths, freq_widths = set(), set()
    for seed in range(100):
        plan = draw_masks(1000, 80, PAPER, torch.Generator().manual_seed(seed))
        time_widths.update(span.width for span in plan.time_spans)
        freq_widths.update(span.width for span in plan.freq_spans)
    # Uniform over {0..50} and {0..30}: 1000 and 200 draws cover every width in practice.
    assert time_widths == set(range(51))
    assert max(freq_widths) == 30 and min(freq_widths) == 0


def test_apply_masks_fills_exactly_the_spans_with_the_mean() -> None:
    features_TF = torch.randn(40, 10, generator=torch.Generator().manual_seed(0)) + 3.0
    plan = MaskPlan(time_spans=(Span(5, 3), Span(30, 0)), freq_spans=(Span(2, 4),))
    masked_TF = apply_masks(features_TF, plan)
    expected_mask_TF = torch.zeros(40, 10, dtype=torch.bool)
    expected_mask_TF[5:8, :] = True
    expected_mask_TF[:, 2:6] = True
    torch.testing.assert_close(
        masked_TF[expected_mask_TF], features_TF.mean().expand(int(expected_mask_TF.sum()))
    )
    torch.testing.assert_close(masked_TF[~expected_mask_TF], features_TF[~expected_mask_TF])


def test_spec_augment_is_a_function_of_its_generator() -> None:
    features_TF = torch.randn(500, 80, generator=torch.Generator().manual_seed(1))
    first = spec_augment(features_TF, PAPER, torch.Generator().manual_seed(7))
    again = spec_augment(features_TF, PAPER, torch.Generator().manual_seed(7))
    other = spec_augment(features_TF, PAPER, torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, features_TF)
    disabled = replace(PAPER, enabled=False)
    assert spec_augment(features_TF, disabled, torch.Generator()) is features_TF


def test_global_rng_is_untouched() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    spec_augment(torch.randn(0, 80).add(1), PAPER, torch.Generator().manual_seed(0))
    spec_augment(torch.ones(300, 80), replace(PAPER, max_time_warp=5), torch.Generator())
    torch.testing.assert_close(torch.rand(1), expected_next)


def test_time_warp_keeps_shape_and_ends() -> None:
    features_TF = torch.arange(200, dtype=torch.float32).unsqueeze(1).repeat(1, 4)
    for seed in range(20):
        warped_TF = time_warp(features_TF, 10, torch.Generator().manual_seed(seed))
        assert warped_TF.shape == features_TF.shape
        # A monotone ramp stays monotone and keeps (nearly) its end values.
        assert torch.all(warped_TF[1:, 0] >= warped_TF[:-1, 0] - 1e-4)
        assert abs(float(warped_TF[0, 0]) - 0.0) < 1.0
        assert abs(float(warped_TF[-1, 0]) - 199.0) < 1.0
    assert time_warp(features_TF[:15], 10, torch.Generator()).shape == (15, 4)
