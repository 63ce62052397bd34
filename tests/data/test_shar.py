"""A Shar export holds the corpus's cuts and data; the loaders read it as they read the corpus."""

from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet

from omnirouter.cli import main
from omnirouter.data.audio import load_cut_audio
from omnirouter.data.batch import Batch
from omnirouter.data.config import DataConfig
from omnirouter.data.corpus import cuts_path
from omnirouter.data.errors import SetExistsError
from omnirouter.data.features import FeatureConfig, FeatureNormalization
from omnirouter.data.loader import build_eval_loader, build_train_loader, eval_cuts
from omnirouter.data.manifests import cut_text, read_manifest
from omnirouter.data.prepare import store_corpus_features
from omnirouter.data.shar import (
    SharFields,
    export_shar,
    read_shar,
    read_shar_info,
    set_shard_epoch,
)
from omnirouter.data.tokenizer import Tokenizer, TokenizerConfig

# Lhotse writes lilcom with tick power -5: values rounded to multiples of 2^-5, so off by at
# most half of that; flac holds 16-bit samples: off by at most half of 2^-15.
LILCOM_ERROR = 2.0**-6
FLAC_ERROR = 2.0**-16
TRAIN_UTTERANCES = 10  # the tiny corpus's: train 10, dev 3, test 3
SHARD_SIZE = 4


@pytest.fixture(scope="module")
def corpus(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny corpus with features stored for train and dev, not for test."""
    corpus_dir = tmp_path_factory.mktemp("shar_corpus") / "corpus"
    shutil.copytree(tiny_corpus, corpus_dir)
    store_corpus_features(corpus_dir, FeatureConfig(), ["train", "dev"])
    return corpus_dir


@pytest.fixture(scope="module")
def shar_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shar") / "export"
    export_shar(corpus, out, shard_size=SHARD_SIZE)
    return out


@pytest.fixture(scope="module")
def config(corpus: Path) -> DataConfig:
    """Stored features read raw (not normalised), so lilcom's bound applies to the batches."""
    features = FeatureConfig(use_stored=True, normalization=FeatureNormalization.none)
    return DataConfig(
        corpus_dir=str(corpus),
        max_duration=7.0,
        max_utterance_seconds=7.0,
        num_buckets=2,
        num_workers=0,
        features=features,
        tokenizer=TokenizerConfig(vocab_size=60),
    )


@pytest.fixture(scope="module")
def tokenizer(config: DataConfig) -> Tokenizer:
    return Tokenizer.load(config.tokenizer_dir)


def corpus_cuts(corpus: Path, set_name: str) -> CutSet:
    return read_manifest(cuts_path(corpus, set_name)).to_eager()


def by_cut(batches: list[Batch]) -> dict[str, tuple[torch.Tensor, list[int], str]]:
    """Each utterance's valid features, targets and text, whatever batch it came in."""
    utterances = {}
    for batch in batches:
        for row, cut_id in enumerate(batch.cut_ids):
            frames, tokens = int(batch.feature_lens_B[row]), int(batch.target_lens_B[row])
            features_TF = batch.features_BTF[row, :frames]
            utterances[cut_id] = (
                features_TF,
                batch.targets_BU[row, :tokens].tolist(),
                batch.texts[row],
            )
    return utterances


def assert_same_utterances(shar: list[Batch], directory: list[Batch], bound: float) -> None:
    from_shar, from_directory = by_cut(shar), by_cut(directory)
    assert sorted(from_shar) == sorted(from_directory)
    for cut_id, (features_TF, targets, text) in from_directory.items():
        shar_features_TF, shar_targets, shar_text = from_shar[cut_id]
        assert (shar_targets, shar_text) == (targets, text)
        assert shar_features_TF.shape == features_TF.shape
        assert float((shar_features_TF - features_TF).abs().max()) <= bound


def test_the_export_lists_its_sets_and_reads_back_the_same_cuts(
    corpus: Path, shar_dir: Path
) -> None:
    info = read_shar_info(shar_dir)
    assert [set_info.name for set_info in info.sets] == ["train", "dev", "test"]
    exported = info.extra["shar"]
    assert {name: entry["fields"] for name, entry in exported.items()} == {
        "train": "features",  # stored features where the corpus has them, else audio
        "dev": "features",
        "test": "audio",
    }
    assert len(exported["train"]["shards"]["cuts"]) == -(-TRAIN_UTTERANCES // SHARD_SIZE)
    assert sorted(exported["test"]["shards"]) == ["cuts", "recording"]
    assert sorted(info.extra["stored_features"]) == ["dev", "train"]
    for name in ("train", "dev", "test"):
        expected = [(cut.id, cut.duration, cut_text(cut)) for cut in corpus_cuts(corpus, name)]
        for with_data in (True, False):
            cuts = read_shar(shar_dir, [name], with_data=with_data)
            assert [(cut.id, cut.duration, cut_text(cut)) for cut in cuts] == expected
    # Nothing in the export points back at the corpus or at its audio files.
    for path in shar_dir.rglob("cuts.*.jsonl.gz"):
        text = gzip.decompress(path.read_bytes()).decode()
        assert str(corpus) not in text and '"type": "file"' not in text
    for cut in read_shar(shar_dir, ["train"]):
        assert not cut.has_recording and cut.features.storage_type == "memory_lilcom"


def test_batches_from_shar_carry_the_stored_features(
    config: DataConfig, shar_dir: Path, tokenizer: Tokenizer
) -> None:
    from_shar = replace(config, shar_dir=str(shar_dir))
    for set_name in ("train", "dev"):
        shar = list(build_eval_loader(from_shar, set_name, tokenizer))
        directory = list(build_eval_loader(config, set_name, tokenizer))
        assert [b.cut_ids for b in shar] == [b.cut_ids for b in directory]
        assert_same_utterances(shar, directory, LILCOM_ERROR)
    # Training: the same SpecAugment masks (seeded by utterance), on lilcom's features; the
    # cuts travel to the worker processes with their data.
    shar = list(build_train_loader(replace(from_shar, num_workers=2), tokenizer, seed=3))
    directory = list(build_train_loader(config, tokenizer, seed=3))
    assert sum(batch.size for batch in shar) == TRAIN_UTTERANCES
    assert_same_utterances(shar, directory, LILCOM_ERROR)


def test_audio_from_shar_is_the_corpus_audio_in_16_bits(
    config: DataConfig, corpus: Path, shar_dir: Path, tokenizer: Tokenizer
) -> None:
    from_shar = replace(config, shar_dir=str(shar_dir))
    shar_cuts = list(eval_cuts(from_shar, "test"))
    assert all(not cut.has_features for cut in shar_cuts)
    for shar_cut, cut in zip(shar_cuts, corpus_cuts(corpus, "test"), strict=True):
        samples, shar_samples = load_cut_audio(cut).samples, load_cut_audio(shar_cut).samples
        assert shar_samples.shape == samples.shape
        assert np.abs(shar_samples - samples).max() <= FLAC_ERROR
    shar = list(build_eval_loader(from_shar, "test", tokenizer))
    directory = list(build_eval_loader(config, "test", tokenizer))
    assert [b.cut_ids for b in shar] == [b.cut_ids for b in directory]
    for one, two in zip(shar, directory, strict=True):
        assert torch.equal(one.feature_lens_B, two.feature_lens_B)
        assert torch.equal(one.targets_BU, two.targets_BU)


def test_shards_are_shuffled_by_seed_and_epoch_and_a_run_resumes_exactly(
    config: DataConfig, shar_dir: Path, tokenizer: Tokenizer
) -> None:
    def shard_order(epoch: int) -> list[str]:
        cuts = read_shar(shar_dir, ["train"], with_data=False, shuffle_seed=0)
        set_shard_epoch(cuts, epoch)
        return list(dict.fromkeys(str(cut.shard_origin) for cut in cuts))

    orders = [shard_order(epoch) for epoch in range(4)]
    assert all(sorted(order) == sorted(orders[0]) for order in orders)
    assert len({tuple(order) for order in orders}) > 1
    assert shard_order(1) == orders[1]  # the order depends on seed and epoch only

    from_shar = replace(config, shar_dir=str(shar_dir), max_duration=5.0, max_utterance_seconds=5.0)
    reference = build_train_loader(from_shar, tokenizer, seed=0)
    epochs = [list(reference) for _ in range(3)]
    interrupted = build_train_loader(from_shar, tokenizer, seed=0)
    interrupted.set_epoch(2)
    iterator = iter(interrupted)
    next(iterator)
    state = interrupted.state_dict()
    resumed = build_train_loader(from_shar, tokenizer, seed=0)  # a new process: no pass made
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert [b.cut_ids for b in rest] == [b.cut_ids for b in epochs[2][1:]]
    for one, two in zip(rest, epochs[2][1:], strict=True):
        assert torch.equal(one.features_BTF, two.features_BTF)
    with pytest.raises(ValueError, match="shar_dir"):
        build_train_loader(config, tokenizer, seed=0).load_state_dict(state)


def test_bad_set_names_and_missing_data_are_clear_errors(
    config: DataConfig,
    corpus: Path,
    shar_dir: Path,
    tmp_path: Path,
    tokenizer: Tokenizer,
    capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "export"
    with pytest.raises(KeyError, match=r"has no set 'nope'; it has \['train', 'dev', 'test'\]"):
        export_shar(corpus, out, ["train", "nope"])
    assert main(["data", "shar", str(corpus), "--out", str(out), "--sets", "train,nope"]) == 2
    assert "has no set 'nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"set 'test' .* has no stored features.*--fields audio"):
        export_shar(corpus, out, ["test"], fields=SharFields.features)
    assert not out.exists()  # checked before anything is written
    with pytest.raises(SetExistsError, match="remove it to export 'dev' again"):
        export_shar(corpus, shar_dir, ["dev"])
    with pytest.raises(ValueError, match="holds a corpus, not a Shar export"):
        export_shar(corpus, corpus, ["dev"])

    from_shar = replace(config, shar_dir=str(shar_dir))
    with pytest.raises(KeyError, match=r"Shar exports of sets \['dev', 'test', 'train'\], not"):
        eval_cuts(from_shar, "nope")
    with pytest.raises(KeyError, match="not of 'nope'"):
        build_train_loader(replace(from_shar, train_sets=["train", "nope"]), tokenizer, seed=0)
    computed = replace(from_shar, features=FeatureConfig())
    with pytest.raises(ValueError, match=r"holds stored features only.*use_stored=true"):
        eval_cuts(computed, "train")
    with pytest.raises(ValueError, match="exported alike"):
        build_train_loader(replace(from_shar, train_sets=["train", "test"]), tokenizer, seed=0)
    with pytest.raises(FileNotFoundError, match=r"is .* a Shar export"):
        eval_cuts(replace(config, shar_dir=str(tmp_path)), "train")


def test_the_command_exports_features_and_audio_together(
    config: DataConfig, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "both"
    arguments = ["--sets", "dev", "--fields", "both", "--shard-size", "2"]
    assert main(["data", "shar", str(corpus), "--out", str(out), *arguments]) == 0
    assert re.search(r"dev +dev +both +2 shards", capsys.readouterr().out)
    # With features computed on the fly, the exported audio is read.
    computed = replace(config, shar_dir=str(out), features=FeatureConfig())
    cuts = list(eval_cuts(computed, "dev"))
    assert len(cuts) == 3 and all(cut.has_recording and cut.has_features for cut in cuts)
