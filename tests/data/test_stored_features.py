"""Stored features of a whole corpus equal the ones computed on the fly, and are only read with
the settings they were made with."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from omnirouter.cli import main
from omnirouter.config import ConfigError
from omnirouter.data.config import DataConfig
from omnirouter.data.corpus import cuts_path, read_corpus_info, write_corpus_info
from omnirouter.data.features import FeatureConfig, cut_features
from omnirouter.data.loader import eval_cuts, train_cuts
from omnirouter.data.manifests import read_manifest
from omnirouter.data.prepare import store_corpus_features
from tests.corpora import espeak_corpus


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak_corpus(tmp_path_factory.mktemp("stored"), 0.3, 0.2, ["en-us"])


def test_stored_features_equal_computed_ones_and_are_stored_once(small_corpus: Path) -> None:
    computed_config = FeatureConfig()
    before = {
        cut.id: cut_features(cut, computed_config)
        for cut in read_manifest(cuts_path(small_corpus, "train"))
    }

    assert store_corpus_features(small_corpus, FeatureConfig()) == ["train", "dev"]
    assert store_corpus_features(small_corpus, FeatureConfig()) == []  # nothing left to do

    stored_config = FeatureConfig(use_stored=True)
    cuts = read_manifest(cuts_path(small_corpus, "train"))
    assert all(cut.has_features for cut in cuts)
    for cut in cuts:
        torch.testing.assert_close(
            cut_features(cut, stored_config), before[cut.id], atol=1e-4, rtol=1e-4
        )


def test_the_settings_are_recorded_and_other_settings_refuse_stored_features(
    small_corpus: Path,
) -> None:
    store_corpus_features(small_corpus, FeatureConfig())
    recorded = read_corpus_info(small_corpus).extra["stored_features"]
    assert sorted(recorded) == ["dev", "train"]
    assert recorded["train"] == {
        "num_mel_bins": 80,
        "frame_length_ms": 25.0,
        "frame_shift_ms": 10.0,
        "low_freq": 20.0,
        "high_freq": -400.0,
    }
    # What every Lhotse manifest records (mel bins, frame shift) is checked utterance by utterance.
    cut = next(iter(read_manifest(cuts_path(small_corpus, "train"))))
    for other in (FeatureConfig(num_mel_bins=40), FeatureConfig(frame_shift_ms=20.0)):
        with pytest.raises(ValueError, match="store them again"):
            cut_features(cut, replace(other, use_stored=True))
    # Features of another extractor (a kaldifeat manifest, say) are refused too.
    other_extractor = replace(cut, features=replace(cut.features, type="kaldifeat-fbank"))
    with pytest.raises(ValueError, match="'kaldifeat-fbank', not the 'kaldi-fbank'"):
        cut_features(other_extractor, FeatureConfig(use_stored=True))
    # The rest only the corpus records: the loaders compare it before reading a set.
    data = DataConfig(corpus_dir=str(small_corpus), train_sets=["train"])
    for other in (FeatureConfig(frame_length_ms=50.0), FeatureConfig(high_freq=-200.0)):
        stored_other = replace(data, features=replace(other, use_stored=True))
        with pytest.raises(ValueError, match=r"set 'train'.*store them again"):
            train_cuts(stored_other)
        with pytest.raises(ValueError, match=r"set 'dev'.*store them again"):
            eval_cuts(stored_other, "dev")
        # Without use_stored the features are computed with the settings asked for: no error.
        train_cuts(replace(data, features=other))
    train_cuts(replace(data, features=FeatureConfig(use_stored=True)))


def test_other_settings_replace_the_stored_features_through_the_command_line(
    small_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_corpus_features(small_corpus, FeatureConfig())
    # A record from an older version (one flat record for the corpus) is dropped, not merged.
    info = read_corpus_info(small_corpus)
    flat = {**info.extra["stored_features"], "num_mel_bins": 80, "dither": 0.0}
    write_corpus_info(small_corpus, replace(info, extra={**info.extra, "stored_features": flat}))

    wide = FeatureConfig(frame_length_ms=50.0)
    assert main(["data", "features", str(small_corpus), "frame_length_ms=50", "--sets", "dev"]) == 0
    assert "stored: dev" in capsys.readouterr().out
    recorded = read_corpus_info(small_corpus).extra["stored_features"]
    assert sorted(recorded) == ["dev", "train"]
    assert recorded["dev"]["frame_length_ms"] == 50.0 and recorded["train"]["frame_length_ms"] == 25
    # The dev set now holds what a 50 ms window computes; the train set is refused for it.
    data = DataConfig(corpus_dir=str(small_corpus), features=replace(wide, use_stored=True))
    for cut in eval_cuts(data, "dev"):
        torch.testing.assert_close(
            cut_features(cut, data.features), cut_features(cut, wide), atol=1e-4, rtol=1e-4
        )
    with pytest.raises(ValueError, match="set 'train'"):
        train_cuts(data)
    # The same settings again: nothing to do.
    assert main(["data", "features", str(small_corpus), "frame_length_ms=50", "--sets", "dev"]) == 0
    assert "already stored" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="frame_lenght_ms"):
        main(["-v", "data", "features", str(small_corpus), "frame_lenght_ms=50"])


def test_stored_features_are_read_from_any_working_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path_factory.mktemp("relative")
    monkeypatch.chdir(root)
    espeak_corpus(Path("corpus"), 0.2, 0.1, ["en-us"])
    store_corpus_features("corpus", FeatureConfig(), ["train"])  # a relative corpus directory
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    cut = next(iter(read_manifest(root / "corpus" / "cuts_train.jsonl.gz")))
    assert cut_features(cut, FeatureConfig(use_stored=True)).shape[1] == 80


def test_a_set_whose_manifest_lost_its_features_is_stored_again(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from omnirouter.data.prepare import sets_lacking_features

    corpus = espeak_corpus(tmp_path_factory.mktemp("lost"), 0.2, 0.1, ["en-us"])
    assert sets_lacking_features(corpus, FeatureConfig()) == ["train", "dev"]
    store_corpus_features(corpus, FeatureConfig())
    assert sets_lacking_features(corpus, FeatureConfig()) == []
    assert sets_lacking_features(corpus, FeatureConfig(num_mel_bins=40)) == ["train", "dev"]
    # corpus.json still records the settings, but the dev manifest no longer points at features.
    path = cuts_path(corpus, "dev")
    CutSet.from_file(path).to_eager().drop_features().to_file(path)
    assert sets_lacking_features(corpus, FeatureConfig()) == ["dev"]
    assert store_corpus_features(corpus, FeatureConfig()) == ["dev"]
    with pytest.raises(KeyError, match=r"has no set 'nope'"):
        sets_lacking_features(corpus, FeatureConfig(), ["nope"])
