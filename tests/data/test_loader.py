from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from omnirouter.config import ConfigError, load_config
from omnirouter.data.audio import AudioError, load_audio
from omnirouter.data.augment import SpecAugmentConfig
from omnirouter.data.batch import Batch
from omnirouter.data.config import DataConfig
from omnirouter.data.corpus import cuts_path
from omnirouter.data.features import FeatureConfig, compute_features
from omnirouter.data.loader import (
    _FittingBucketingSampler,
    build_eval_loader,
    build_train_loader,
    eval_cuts,
    evaluation_set_names,
    pack_by_duration,
)
from omnirouter.data.manifests import PreparedSet, write_corpus
from omnirouter.data.tokenizer import Tokenizer, TokenizerConfig
from tests.data.conftest import sox

MAX_DURATION = 7.0


@pytest.fixture(scope="module")
def config(tiny_corpus: Path) -> DataConfig:
    return DataConfig(
        corpus_dir=str(tiny_corpus),
        max_duration=MAX_DURATION,
        max_utterance_seconds=MAX_DURATION,
        num_buckets=2,
        num_workers=0,
        tokenizer=TokenizerConfig(vocab_size=60),
    )


@pytest.fixture(scope="module")
def tokenizer(config: DataConfig) -> Tokenizer:
    return Tokenizer.load(config.tokenizer_dir)


def expected_frames(path: Path) -> int:
    """Frames of a file: its samples at 16 kHz (rounded half up), then round(N / 160)."""
    info = soundfile.info(path)
    samples_16k = int(np.floor(info.frames * 16000 / info.samplerate + 0.5))
    return int(np.floor(samples_16k / 160 + 0.5))


def audio_paths(config: DataConfig, set_name: str) -> dict[str, Path]:
    return {cut.id: Path(cut.recording.sources[0].source) for cut in eval_cuts(config, set_name)}


def check_padding(batch: Batch, paths: dict[str, Path], tokenizer: Tokenizer) -> None:
    texts = dict(zip(batch.cut_ids, batch.texts, strict=True))
    assert batch.features_BTF.shape[0] == batch.size == len(batch.cut_ids)
    assert batch.features_BTF.shape[1] == int(batch.feature_lens_B.max())
    assert batch.targets_BU.shape[1] == int(batch.target_lens_B.max())
    for row, cut_id in enumerate(batch.cut_ids):
        frames, tokens = int(batch.feature_lens_B[row]), int(batch.target_lens_B[row])
        assert frames == expected_frames(paths[cut_id])
        assert torch.all(batch.features_BTF[row, frames:] == 0)
        assert batch.targets_BU[row, :tokens].tolist() == tokenizer.encode(texts[cut_id])
        assert torch.all(batch.targets_BU[row, :tokens] >= 1)
        assert torch.all(batch.targets_BU[row, tokens:] == 0)
    for tensor in (batch.feature_lens_B, batch.targets_BU, batch.target_lens_B):
        assert tensor.dtype == torch.int64
    assert batch.features_BTF.dtype == torch.float32


def test_eval_batches(config: DataConfig, tokenizer: Tokenizer) -> None:
    paths = audio_paths(config, "train")
    manifest_order = list(paths)
    batches = list(build_eval_loader(config, "train", tokenizer))
    assert [cut_id for batch in batches for cut_id in batch.cut_ids] == manifest_order
    durations = {cut.id: cut.duration for cut in eval_cuts(config, "train")}
    for batch in batches:
        check_padding(batch, paths, tokenizer)
        assert len(batch.cut_ids) * max(durations[i] for i in batch.cut_ids) <= MAX_DURATION
        for row, cut_id in enumerate(batch.cut_ids):  # no augmentation: the plain features
            frames = int(batch.feature_lens_B[row])
            plain = compute_features(load_audio(paths[cut_id]).samples, 16000, FeatureConfig())
            torch.testing.assert_close(batch.features_BTF[row, :frames], plain)
    again = list(build_eval_loader(config, cuts_path(config.corpus_dir, "train"), tokenizer))
    for first, second in zip(batches, again, strict=True):
        assert torch.equal(first.features_BTF, second.features_BTF)


def test_eval_sets_and_names(config: DataConfig, tokenizer: Tokenizer) -> None:
    assert evaluation_set_names(config) == ["test"]
    assert evaluation_set_names(replace(config, test_sets=["dev", "test"])) == ["dev", "test"]
    with pytest.raises(KeyError, match="has no set 'nope'"):
        eval_cuts(config, "nope")
    cuts = eval_cuts(config, "dev")
    assert [b.cut_ids for b in build_eval_loader(config, cuts, tokenizer)] != []


def train_epoch(loader) -> list[Batch]:
    return list(loader)


def test_train_batches_are_padded_and_cover_the_set(
    config: DataConfig, tokenizer: Tokenizer
) -> None:
    loader = build_train_loader(config, tokenizer, seed=0)
    paths = audio_paths(config, "train")
    durations = {cut.id: cut.duration for cut in eval_cuts(config, "train")}
    for epoch in range(2):
        batches = train_epoch(loader)
        ids = [cut_id for batch in batches for cut_id in batch.cut_ids]
        assert sorted(ids) == sorted(paths)  # every utterance exactly once per epoch
        for batch in batches:
            check_padding(batch, paths, tokenizer)
            batch_durations = [durations[cut_id] for cut_id in batch.cut_ids]
            assert sum(batch_durations) <= MAX_DURATION
            assert len(batch_durations) * max(batch_durations) <= MAX_DURATION
        assert loader.epoch == epoch + 1
    assert loader.skipped == {}


def test_spec_augment_only_in_training(config: DataConfig, tokenizer: Tokenizer) -> None:
    plain_config = replace(config, spec_augment=SpecAugmentConfig(enabled=False))
    eval_features = {
        cut_id: batch.features_BTF[row, : batch.feature_lens_B[row]]
        for batch in build_eval_loader(config, "train", tokenizer)
        for row, cut_id in enumerate(batch.cut_ids)
    }

    def train_features(data_config: DataConfig, seed: int) -> dict[str, torch.Tensor]:
        return {
            cut_id: batch.features_BTF[row, : batch.feature_lens_B[row]]
            for batch in build_train_loader(data_config, tokenizer, seed=seed)
            for row, cut_id in enumerate(batch.cut_ids)
        }

    for cut_id, features in train_features(plain_config, seed=0).items():
        torch.testing.assert_close(features, eval_features[cut_id])
    augmented, same, other = (train_features(config, seed) for seed in (0, 0, 1))
    for cut_id, features in augmented.items():
        assert not torch.equal(features, eval_features[cut_id])
        assert torch.equal(features, same[cut_id])
        assert not torch.equal(features, other[cut_id])


def batch_record(batch: Batch) -> tuple:
    return batch.cut_ids, batch.features_BTF, batch.targets_BU


def assert_same_batches(first: list[Batch], second: list[Batch]) -> None:
    assert [b.cut_ids for b in first] == [b.cut_ids for b in second]
    for one, two in zip(first, second, strict=True):
        assert torch.equal(one.features_BTF, two.features_BTF)
        assert torch.equal(one.targets_BU, two.targets_BU)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_mid_epoch(config: DataConfig, tokenizer: Tokenizer, num_workers: int) -> None:
    config = replace(config, max_duration=5.0, max_utterance_seconds=5.0, num_workers=num_workers)
    reference = build_train_loader(config, tokenizer, seed=7)
    epochs = [train_epoch(reference), train_epoch(reference)]
    assert len(epochs[0]) >= 4
    assert [b.cut_ids for b in epochs[0]] != [b.cut_ids for b in epochs[1]]

    interrupted = build_train_loader(config, tokenizer, seed=7)
    iterator = iter(interrupted)
    consumed = [next(iterator), next(iterator)]
    state = interrupted.state_dict()
    del iterator, interrupted
    assert_same_batches(consumed, epochs[0][:2])

    resumed = build_train_loader(config, tokenizer, seed=7)
    resumed.load_state_dict(state)
    assert_same_batches(train_epoch(resumed), epochs[0][2:])
    end_of_epoch = resumed.state_dict()
    again = build_train_loader(config, tokenizer, seed=7)
    again.load_state_dict(end_of_epoch)
    assert again.epoch == 1
    assert_same_batches(train_epoch(again), epochs[1])


def test_resume_refuses_changed_settings(config: DataConfig, tokenizer: Tokenizer) -> None:
    state = build_train_loader(config, tokenizer, seed=0).state_dict()
    changed = build_train_loader(replace(config, max_duration=9.0), tokenizer, seed=0)
    with pytest.raises(ValueError, match=r"max_duration: 7.0 -> 9.0"):
        changed.load_state_dict(state)
    with pytest.raises(ValueError, match=r"seed: 0 -> 1"):
        build_train_loader(config, tokenizer, seed=1).load_state_dict(state)


def test_ranks_share_out_the_batches(config: DataConfig, tokenizer: Tokenizer) -> None:
    small = replace(config, max_duration=3.5, max_utterance_seconds=3.5)
    ranks = [
        train_epoch(build_train_loader(small, tokenizer, seed=3, rank=rank, world_size=2))
        for rank in range(2)
    ]
    assert len(ranks[0]) == len(ranks[1]) > 0
    ids = [{cut_id for batch in batches for cut_id in batch.cut_ids} for batches in ranks]
    originals = [{cut_id.split("_dup")[0] for cut_id in rank_ids} for rank_ids in ids]
    assert originals[0] | originals[1] == set(audio_paths(config, "train"))
    assert not (ids[0] & ids[1])


def fake_cut(cut_id: str, duration: float) -> MonoCut:
    recording = Recording(cut_id, [], 16000, int(duration * 16000), duration)
    supervision = SupervisionSegment(cut_id, cut_id, 0.0, duration, text="x")
    return MonoCut(cut_id, 0.0, duration, 0, recording=recording, supervisions=[supervision])


def test_pack_by_duration() -> None:
    cuts = [fake_cut(f"c{i}", d) for i, d in enumerate([3.0, 3.0, 9.0, 2.0, 2.0, 2.0, 2.0, 12.0])]
    groups = [[cut.duration for cut in group] for group in pack_by_duration(cuts, 10.0)]
    assert groups == [[3.0, 3.0], [9.0], [2.0, 2.0, 2.0, 2.0], [12.0]]


@pytest.mark.filterwarnings("ignore:You are using DynamicBucketingSampler with an eagerly")
def test_bucketing_sampler_never_exceeds_max_duration() -> None:
    rng = random.Random(0)
    cuts = CutSet.from_cuts(fake_cut(f"c{i}", rng.uniform(0.5, 10.0)) for i in range(400))
    sampler = _FittingBucketingSampler(
        cuts, max_duration=12.0, num_buckets=3, shuffle=True, buffer_size=200, seed=0
    )
    seen = []
    for batch in sampler:
        durations = [cut.duration for cut in batch]
        assert len(durations) * max(durations) <= 12.0
        seen.extend(cut.id for cut in batch)
    assert sorted(seen) == sorted(cut.id for cut in cuts)


@pytest.fixture(scope="module")
def bad_corpus(
    tmp_path_factory: pytest.TempPathFactory, config: DataConfig, spoken: dict[str, Path]
) -> Path:
    """The tiny training set plus one utterance of each kind of trouble, written around the
    prepare-time checks (as if the files had changed after preparation)."""
    directory = tmp_path_factory.mktemp("bad")
    good = list(eval_cuts(config, "train"))
    sources = list(spoken.values())

    def cut_for(name: str, audio: Path, text: str) -> MonoCut:
        cut = Recording.from_file(audio, recording_id=name).to_cut()
        supervision = SupervisionSegment(name, name, 0.0, cut.duration, text=text)
        return MonoCut(
            name, 0.0, cut.duration, 0, recording=cut.recording, supervisions=[supervision]
        )

    copies = {}
    for name in ("missing", "garbage", "empty"):
        copies[name] = directory / f"{name}.wav"
        copies[name].write_bytes(sources[0].read_bytes())
    copies["nan"] = directory / "nan.wav"  # a float WAV can hold NaN
    soundfile.write(copies["nan"], np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    long_audio = directory / "long.wav"
    sox(*sources[:4], long_audio)
    bad = [
        cut_for("missing", copies["missing"], "a sentence"),
        cut_for("garbage", copies["garbage"], "a sentence"),
        cut_for("empty", copies["empty"], "a sentence"),
        cut_for("nan", copies["nan"], "a sentence"),
        cut_for("silent_text", sources[1], "[noise]"),
        cut_for("foreign", sources[2], "the piñata"),
        cut_for("too_long", long_audio, "the quick brown fox"),
    ]
    copies["missing"].unlink()
    copies["garbage"].write_bytes(b"definitely not audio" * 100)
    sox("-n", "-r", "22050", "-c", "1", copies["empty"], "trim", "0", "0")
    cuts = CutSet.from_cuts(good + bad)
    write_corpus(directory, "bad", [PreparedSet("train", "train", cuts)])
    return directory


def test_bad_utterances_are_skipped_counted_and_logged(
    bad_corpus: Path, config: DataConfig, tokenizer: Tokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    bad_config = replace(config, corpus_dir=str(bad_corpus))
    expected = {
        "missing_audio": 1,
        "unreadable_audio": 1,
        "empty_audio": 1,
        "non_finite_audio": 1,
        "empty_transcript": 1,
        "untokenizable": 1,
        "too_long": 1,
    }
    with caplog.at_level(logging.WARNING, logger="omnirouter.data.loader"):
        loader = build_train_loader(bad_config, tokenizer, seed=0)
        batches = train_epoch(loader)
    delivered = {cut_id for batch in batches for cut_id in batch.cut_ids}
    assert delivered == set(audio_paths(config, "train"))
    assert loader.skipped == expected
    for cut_id, reason in [("missing", "missing_audio"), ("garbage", "unreadable_audio")]:
        assert any(cut_id in r.message and reason in r.message for r in caplog.records)
    assert "missing.wav" in caplog.text

    # A resumed run counts each skipped utterance once, as an uninterrupted one does.
    interrupted = build_train_loader(bad_config, tokenizer, seed=0)
    next(iter(interrupted))
    resumed = build_train_loader(bad_config, tokenizer, seed=0)
    resumed.load_state_dict(interrupted.state_dict())
    train_epoch(resumed)
    assert resumed.skipped == expected


def test_each_skipped_utterance_is_logged_once_per_run(
    bad_corpus: Path, config: DataConfig, tokenizer: Tokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    loader = build_train_loader(replace(config, corpus_dir=str(bad_corpus)), tokenizer, seed=0)
    with caplog.at_level(logging.WARNING):
        train_epoch(loader)
        first_epoch = [record.getMessage() for record in caplog.records]
        train_epoch(loader)
    assert len(first_epoch) == 7  # one per bad utterance (see the test above)
    assert [record.getMessage() for record in caplog.records] == first_epoch
    assert set(loader.skipped.values()) == {2}  # still counted in every epoch


@pytest.mark.parametrize("num_workers", [0, 1])
def test_evaluation_refuses_bad_audio(
    bad_corpus: Path, config: DataConfig, tokenizer: Tokenizer, num_workers: int
) -> None:
    bad_config = replace(config, corpus_dir=str(bad_corpus), num_workers=num_workers)
    cuts = {cut.id: cut for cut in eval_cuts(bad_config, "train")}
    with pytest.raises(AudioError, match=r"garbage\.wav: cannot decode"):
        list(build_eval_loader(bad_config, CutSet.from_cuts([cuts["garbage"]]), tokenizer))
    # Evaluation keeps what training would skip for its text: the reference is still scored.
    foreign = CutSet.from_cuts([cuts["foreign"]])
    (batch,) = build_eval_loader(bad_config, foreign, tokenizer)
    assert batch.texts == ("the piñata",)
    assert 1 in batch.targets_BU[0].tolist()  # <unk>


def test_config_loads_from_overrides() -> None:
    loaded = load_config(
        DataConfig,
        overrides=[
            "max_duration=50",
            "train_sets=[a,b]",
            "spec_augment.num_time_masks=5",
            "features.normalization=none",
            "quadratic_duration=20",
        ],
    )
    assert loaded.max_duration == 50.0 and loaded.train_sets == ["a", "b"]
    assert loaded.spec_augment.num_time_masks == 5 and loaded.quadratic_duration == 20.0
    assert loaded.features.normalization.value == "none"
    with pytest.raises(ConfigError, match="max_duratio"):
        load_config(DataConfig, overrides=["max_duratio=5"])
    with pytest.raises(ValueError, match=r"exceeds data\.max_duration"):
        DataConfig(max_duration=10.0, max_utterance_seconds=20.0)
    with pytest.raises(ValueError, match="num_workers=0"):
        DataConfig(features=FeatureConfig(device="cuda"), num_workers=2)


def test_a_corpus_smaller_than_the_bucket_count(config: DataConfig, tokenizer: Tokenizer) -> None:
    many_buckets = replace(config, num_buckets=50)  # the training set has 10 utterances
    ids = [
        i for batch in build_train_loader(many_buckets, tokenizer, seed=0) for i in batch.cut_ids
    ]
    assert sorted(ids) == sorted(audio_paths(config, "train"))
