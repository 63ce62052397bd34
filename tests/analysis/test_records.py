"""Routing capture from a real tiny model's output, step energy, and the save/load round trip."""

from pathlib import Path

import numpy as np
import pytest
import torch

from omnirouter.analysis.records import (
    RoutingCollector,
    load_records,
    save_records,
    step_energy,
)
from omnirouter.model.frontend import stacked_lengths

from .standins import make_batches, tiny_model


def test_step_energy_is_the_mean_level_of_each_steps_valid_frames() -> None:
    generator = torch.Generator().manual_seed(0)
    features_BTF = torch.randn(2, 11, 5, generator=generator)
    lengths_B = torch.tensor([11, 6])
    energy_BS = step_energy(features_BTF, lengths_B, stack_frames=4)
    assert energy_BS.shape == (2, 3)
    for batch, length in enumerate(lengths_B.tolist()):
        for step in range(int(stacked_lengths(torch.tensor(length), 4))):
            frames = features_BTF[batch, 4 * step : min(4 * step + 4, length)]
            assert energy_BS[batch, step].item() == pytest.approx(frames.mean().item(), abs=1e-6)


@pytest.mark.parametrize("family", ["switch", "omni"])
def test_collector_keeps_each_utterances_valid_steps(family: str) -> None:
    model = tiny_model(family)
    batches = make_batches(num_utterances=5, batch_size=3)
    collector = RoutingCollector(stack_frames=4, shown_cut_ids=["utt-001", "utt-004"])
    expected = {}
    with torch.inference_mode():
        for batch in batches:
            output = model(batch.features_BTF, batch.feature_lens_B)
            collector(batch, output)
            experts_LBT = torch.stack([info.experts_BT() for info in output.routing])
            for index, cut_id in enumerate(batch.cut_ids):
                expected[cut_id] = (experts_LBT[:, index], batch, index)
    records = collector.records("tiny", family)

    assert records.layers == (0, 1, 2, 3)
    assert records.num_experts == 4
    assert len(set(records.router_ids)) == (4 if family == "switch" else 1)
    assert records.cut_ids == tuple(f"utt-{index:03d}" for index in range(5))
    for position, cut_id in enumerate(records.cut_ids):
        experts_LT, batch, index = expected[cut_id]
        steps = int(stacked_lengths(batch.feature_lens_B[index], 4))
        experts_LS = records.utterance_experts(position)
        assert experts_LS.shape == (4, steps)
        np.testing.assert_array_equal(experts_LS, experts_LT[:, :steps].numpy())
        assert (experts_LT[:, steps:] == -1).all()  # the rest is padding
    assert sorted(records.spectrograms) == ["utt-001", "utt-004"]
    shown_batch = batches[0]
    np.testing.assert_array_equal(
        records.spectrograms["utt-001"],
        shown_batch.features_BTF[1, : shown_batch.feature_lens_B[1]].numpy(),
    )


def test_collector_rejects_a_wrong_stack_size() -> None:
    model = tiny_model("omni")
    batch = make_batches(num_utterances=2, batch_size=2)[0]
    collector = RoutingCollector(stack_frames=3)
    with torch.inference_mode(), pytest.raises(ValueError, match="stack_frames"):
        collector(batch, model(batch.features_BTF, batch.feature_lens_B))


def test_records_round_trip_through_files(tmp_path: Path) -> None:
    model = tiny_model("switch")
    collector = RoutingCollector(stack_frames=4, shown_cut_ids=["utt-002"])
    with torch.inference_mode():
        for batch in make_batches(num_utterances=4, batch_size=2):
            collector(batch, model(batch.features_BTF, batch.feature_lens_B))
    records = collector.records("switch-tiny", "switch")
    loaded = load_records(save_records(records, tmp_path, "switch-tiny"))
    for name in (
        "name",
        "family",
        "layers",
        "router_ids",
        "num_experts",
        "stack_frames",
        "cut_ids",
    ):
        assert getattr(loaded, name) == getattr(records, name)
    for name in ("experts_LN", "energy_N", "offsets_U"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(records, name))
    assert loaded.spectrograms.keys() == records.spectrograms.keys()
    np.testing.assert_array_equal(loaded.spectrograms["utt-002"], records.spectrograms["utt-002"])


def test_loading_broken_records_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match=r"broken\.json"):
        load_records(path)
