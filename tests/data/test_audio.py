from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from lhotse import Recording, SupervisionSegment
from lhotse.cut import MultiCut

from omnirouter.data.audio import (
    SAMPLE_RATE,
    AudioError,
    AudioProblem,
    load_audio,
    load_cut_audio,
    recording_from_file,
)
from tests.data.conftest import require_tool, sox


def sine(frequency: float, seconds: float, rate: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def test_wav_at_another_rate_is_resampled_to_16k(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    soundfile.write(path, sine(440.0, 1.5, 8000), 8000, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(len(audio.samples) - 1.5 * SAMPLE_RATE) <= 1
    assert abs(peak_frequency(audio.samples, SAMPLE_RATE) - 440.0) < 2.0
    assert audio.path == str(path)


def test_channels_are_averaged(tmp_path: Path) -> None:
    left, right = sine(300.0, 0.5, SAMPLE_RATE), sine(1000.0, 0.5, SAMPLE_RATE)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path).samples, (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("suffix", ["flac", "ogg", "mp3"])
def test_compressed_formats_match_the_wav(tmp_path: Path, suffix: str) -> None:
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, sine(500.0, 1.0, 22050), 22050, subtype="PCM_16")
    other = tmp_path / f"tone.{suffix}"
    require_tool("ffmpeg")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", wav, other], check=True)
    reference, decoded = load_audio(wav).samples, load_audio(other).samples
    assert abs(len(decoded) - len(reference)) < 0.06 * SAMPLE_RATE  # codec padding
    if suffix == "flac":  # lossless
        np.testing.assert_allclose(decoded, reference, atol=1e-6)
    assert abs(peak_frequency(decoded, SAMPLE_RATE) - 500.0) < 2.0


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.wav"
    with pytest.raises(AudioError, match="not found") as caught:
        load_audio(path)
    assert caught.value.problem is AudioProblem.missing
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="cannot decode") as caught:
        load_audio(path)
    assert caught.value.problem is AudioProblem.unreadable
    assert str(path) in str(caught.value)


def test_zero_length_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sox("-n", "-r", "16000", "-c", "1", path, "trim", "0", "0")
    with pytest.raises(AudioError, match="zero-length") as caught:
        recording_from_file(path)
    assert caught.value.problem is AudioProblem.empty
    with pytest.raises(AudioError, match="zero-length"):
        load_audio(path)


def test_cut_audio_downmixes_and_resamples(tmp_path: Path) -> None:
    left, right = sine(200.0, 1.0, 8000), sine(900.0, 1.0, 8000)
    path = tmp_path / "stereo8k.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    recording = Recording.from_file(path, recording_id="r")
    supervision = SupervisionSegment("u", "r", 0.0, recording.duration, channel=[0, 1], text="x")
    cut = MultiCut(
        "u", 0.0, recording.duration, [0, 1], recording=recording, supervisions=[supervision]
    )
    audio = load_cut_audio(cut)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.ndim == 1 and abs(len(audio.samples) - SAMPLE_RATE) <= 1
    np.testing.assert_allclose(audio.samples, load_audio(path).samples, atol=1e-6)


def test_cut_whose_file_vanished(tmp_path: Path) -> None:
    path = tmp_path / "gone.wav"
    soundfile.write(path, sine(200.0, 0.5, SAMPLE_RATE), SAMPLE_RATE)
    cut = Recording.from_file(path).to_cut()
    path.unlink()
    with pytest.raises(AudioError, match="not found") as caught:
        load_cut_audio(cut)
    assert str(path) in str(caught.value)


def test_a_file_holding_nan_samples_is_refused_naming_it(tmp_path: Path) -> None:
    import soundfile

    path = tmp_path / "nan.wav"
    samples = np.zeros(1600, dtype=np.float32)
    samples[100:110] = np.nan
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite") as caught:
        load_audio(path)
    assert caught.value.problem is AudioProblem.non_finite
    assert str(path) in str(caught.value) and "10 of 1600" in str(caught.value)
