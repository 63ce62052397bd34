from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
import pytest
import soundfile
import torch
from lhotse import CutSet, Recording

from omnirouter.data.audio import SAMPLE_RATE, load_audio
from omnirouter.data.features import (
    FeatureConfig,
    FeatureNormalization,
    compute_features,
    cut_features,
    log_mel,
    store_features,
)

RAW = FeatureConfig(normalization=FeatureNormalization.none)
# Tolerance against kaldi-native-fbank: both implement Kaldi's fbank (povey window,
# pre-emphasis 0.97, DC removal, 512-point FFT, power spectrum, 80 triangular mel filters
# 20 Hz .. Nyquist-400 Hz); they differ only in float32 summation order.
KALDI_TOLERANCE = 2e-3  # absolute, on natural-log mel energies (typically -15 .. +5)


def kaldi_native_fbank(samples: np.ndarray) -> np.ndarray:
    options = knf.FbankOptions()
    options.frame_opts.samp_freq = SAMPLE_RATE
    options.frame_opts.dither = 0.0
    options.frame_opts.snip_edges = False
    options.frame_opts.frame_length_ms = 25.0
    options.frame_opts.frame_shift_ms = 10.0
    options.mel_opts.num_bins = 80
    options.mel_opts.low_freq = 20.0
    options.mel_opts.high_freq = -400.0
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(SAMPLE_RATE, samples.tolist())
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


@pytest.fixture(scope="module")
def speech(spoken: dict[str, Path]) -> np.ndarray:
    samples = load_audio(next(iter(spoken.values()))).samples
    # A little noise so no frame is digital silence, where the two libraries' log floors
    # (1e-10 vs float32 epsilon) would differ by design.
    noise = np.random.default_rng(0).normal(0.0, 1e-3, samples.shape).astype(np.float32)
    return samples + noise


def test_log_mel_matches_kaldi_native_fbank(speech: np.ndarray) -> None:
    ours = log_mel(speech, SAMPLE_RATE, RAW).numpy()
    reference = kaldi_native_fbank(speech)
    assert ours.shape == reference.shape == (reference.shape[0], 80)
    assert np.abs(ours - reference).max() < KALDI_TOLERANCE


@pytest.mark.parametrize("num_samples", [400, 1599, 1600, 1681, 16000, 23999])
def test_frame_count_is_samples_over_shift_rounded(num_samples: int) -> None:
    samples = np.random.default_rng(num_samples).normal(0, 0.1, num_samples).astype(np.float32)
    features_TF = compute_features(samples, SAMPLE_RATE, FeatureConfig())
    expected = int(np.floor(num_samples / 160 + 0.5))  # 10 ms hop at 16 kHz, no edge snipping
    assert features_TF.shape == (expected, 80)
    assert features_TF.dtype == torch.float32
    assert FeatureConfig().num_frames(num_samples) == expected


def test_utterance_normalisation(speech: np.ndarray) -> None:
    raw_TF = log_mel(speech, SAMPLE_RATE, RAW)
    normalised_TF = compute_features(speech, SAMPLE_RATE, FeatureConfig())
    expected_TF = (raw_TF - raw_TF.mean(0)) / raw_TF.std(0, unbiased=False)
    torch.testing.assert_close(normalised_TF, expected_TF, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(normalised_TF.mean(0), torch.zeros(80), atol=1e-4, rtol=0)


def test_other_sample_rates_are_resampled(spoken: dict[str, Path]) -> None:
    path = next(iter(spoken.values()))
    native, rate = soundfile.read(path, dtype="float32")
    assert rate != SAMPLE_RATE
    direct = compute_features(native, rate, FeatureConfig())
    via_file = compute_features(load_audio(path).samples, SAMPLE_RATE, FeatureConfig())
    torch.testing.assert_close(direct, via_file, atol=1e-4, rtol=1e-4)


def test_dither_only_with_a_generator(speech: np.ndarray) -> None:
    config = replace(RAW, dither=1e-2)
    plain = log_mel(speech, SAMPLE_RATE, config)
    torch.testing.assert_close(plain, log_mel(speech, SAMPLE_RATE, RAW))
    first = log_mel(speech, SAMPLE_RATE, config, torch.Generator().manual_seed(3))
    again = log_mel(speech, SAMPLE_RATE, config, torch.Generator().manual_seed(3))
    other = log_mel(speech, SAMPLE_RATE, config, torch.Generator().manual_seed(4))
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, plain) and not torch.allclose(first, other)


def test_stored_features_equal_computed(tmp_path: Path, spoken: dict[str, Path]) -> None:
    paths = list(spoken.values())[:2]
    cuts = CutSet.from_cuts(
        Recording.from_file(path, recording_id=path.stem).to_cut() for path in paths
    ).resample(SAMPLE_RATE)
    stored = store_features(cuts, FeatureConfig(), tmp_path / "features")
    for cut in stored:
        assert cut.has_features
        from_disk = cut_features(cut, replace(FeatureConfig(), use_stored=True))
        computed = cut_features(cut, FeatureConfig())
        torch.testing.assert_close(from_disk, computed, atol=1e-5, rtol=1e-5)
