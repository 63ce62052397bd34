import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from omnirouter.data.audio import AudioError
from omnirouter.data.features import FeatureConfig, compute_features
from omnirouter.evaluate.transcribe import (
    Transcriber,
    TranscriptionError,
    chunk_spans,
    transcribe_files,
)

from .conftest import tiny_model

SAMPLE_RATE = 16000
SENTENCES = (
    "Sparse mixtures of experts route every frame to one expert. "
    "The omni router shares a single routing matrix across all layers, "
    "so the experts of different layers learn to cooperate."
)


def speech_recording(path: Path, seconds: float) -> Path:
    """`seconds` of synthetic speech at 44.1 kHz stereo FLAC (espeak-ng + sox), or, when
    those engines are missing, tones of changing pitch with short pauses."""
    if shutil.which("espeak-ng") and shutil.which("sox"):
        sentence = path.with_name("sentence.wav")
        subprocess.run(["espeak-ng", "-w", str(sentence), SENTENCES], check=True)
        repeats = int(seconds // 4) + 1
        convert = ["sox", str(sentence), "-r", "44100", "-c", "2", str(path)]
        subprocess.run([*convert, "repeat", str(repeats), "trim", "0", str(seconds)], check=True)
    else:
        rate = 44100
        pieces = []
        for index in range(int(seconds // 0.5)):
            time = np.arange(int(0.4 * rate)) / rate
            pieces += [
                0.3 * np.sin(2 * np.pi * (200 + 40 * (index % 9)) * time),
                np.zeros(rate // 10),
            ]
        samples = np.concatenate(pieces)[: int(seconds * rate)]
        soundfile.write(path, np.stack([samples, samples], axis=1), rate)
    return path


@pytest.fixture(scope="module")
def model():
    return tiny_model("omni").eval()


@pytest.fixture
def transcriber(model, tokenizer):
    return Transcriber(model, tokenizer, FeatureConfig(), chunk_seconds=30.0)


def collapse(labels: list[int]) -> list[int]:
    return [label for label, _ in itertools.groupby(labels) if label != 0]


def test_spans_cover_the_audio_and_cut_in_the_quiet(tmp_path):
    rng = np.random.default_rng(0)
    samples = rng.standard_normal(SAMPLE_RATE * 25).astype(np.float32)
    samples[int(9.3 * SAMPLE_RATE) : int(9.4 * SAMPLE_RATE)] = 0.0  # a pause before the 10 s mark
    spans = list(chunk_spans(samples, SAMPLE_RATE, chunk_seconds=10.0, boundary_search_seconds=2))
    assert spans[0].start == 0 and spans[-1].stop == len(samples)
    assert all(a.stop == b.start for a, b in itertools.pairwise(spans))
    assert all(0 < len(span) <= 10 * SAMPLE_RATE for span in spans)
    assert 9.3 * SAMPLE_RATE <= spans[0].stop <= 9.4 * SAMPLE_RATE


def test_short_audio_is_one_span():
    assert list(chunk_spans(np.zeros(100), SAMPLE_RATE, 30.0)) == [range(0, 100)]


def test_one_chunk_matches_the_model_on_the_whole_features(model, tokenizer):
    samples = 0.1 * np.random.default_rng(1).standard_normal(3 * SAMPLE_RATE).astype(np.float32)
    features = compute_features(samples, SAMPLE_RATE, FeatureConfig())
    with torch.no_grad():
        output = model(features.unsqueeze(0), torch.tensor([features.shape[0]]))
    expected = tokenizer.decode(collapse(output.log_probs_BTV[0].argmax(-1).tolist())).strip()
    # Without the detector: white noise is no speech, and the model would not hear it at all.
    transcript = Transcriber(model, tokenizer, FeatureConfig(), vad=None).transcribe(samples)
    assert transcript.text == expected
    assert len(transcript.segments) == 1
    assert transcript.duration == pytest.approx(3.0)


def test_arrays_at_other_rates_and_with_channels(transcriber):
    samples = np.random.default_rng(2).standard_normal((2, 8000 * 2)).astype(np.float32)
    transcript = transcriber.transcribe(samples, sample_rate=8000)
    assert transcript.duration == pytest.approx(2.0)
    with pytest.raises(TranscriptionError, match="zero-length"):
        transcriber.transcribe(np.zeros(0, dtype=np.float32))


def test_three_minutes_in_bounded_chunks(tmp_path, model, tokenizer):
    path = speech_recording(tmp_path / "talk.flac", 180.0)
    transcriber = Transcriber(model, tokenizer, FeatureConfig(), vad=None)
    frames_seen: list[int] = []
    hook = model.register_forward_pre_hook(lambda m, args: frames_seen.append(args[0].shape[1]))
    try:
        transcript = transcriber.transcribe(path)
    finally:
        hook.remove()
    assert transcript.duration == pytest.approx(180.0, abs=0.01)
    segments = transcript.segments
    assert len(segments) >= 6 and len(frames_seen) == len(segments)
    # Memory is bounded by one chunk: no forward ever sees more than 30 s of frames (10 ms hop).
    assert max(frames_seen) <= 30 * 100 + 1
    assert segments[0].start == 0 and segments[-1].end == pytest.approx(180.0, abs=0.01)
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))
    assert all(segment.end - segment.start <= 30.0 for segment in segments)
    assert transcript.text == " ".join(s.text for s in segments if s.text)
    assert transcript.source == str(path)


def test_a_bad_file_among_good_ones(tmp_path, transcriber):
    good = speech_recording(tmp_path / "good.flac", 3.0)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    missing = tmp_path / "missing.wav"
    nan = tmp_path / "nan.wav"
    soundfile.write(nan, np.full(16000, np.nan, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    results = transcribe_files(transcriber, [not_audio, good, empty, missing, good, nan])
    assert [result.transcript is not None for result in results] == [
        False,
        True,
        False,
        False,
        True,
        False,
    ]
    bad_ones = [results[0], results[2], results[3], results[5]]
    for result, bad in zip(bad_ones, [not_audio, empty, missing, nan]):
        assert str(bad) in result.error
    assert "NaN" in results[5].error
    assert results[1].transcript.text == results[4].transcript.text
    with pytest.raises(AudioError, match=r"empty\.wav"):
        transcriber.transcribe(empty)


# ---- voice-activity detection ----------------------------------------------------------------

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox make the speech the detector must find",
)


def spoken(tmp_path: Path, text: str) -> np.ndarray:
    """`text` spoken by espeak-ng, 16 kHz mono float32, peak 0.5, its own edge silence trimmed."""
    wav = tmp_path / "spoken.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
    trimmed = tmp_path / "trimmed.wav"
    trim = ["silence", "1", "0.01", "1%", "reverse", "silence", "1", "0.01", "1%", "reverse"]
    subprocess.run(["sox", str(wav), "-r", str(SAMPLE_RATE), str(trimmed), *trim], check=True)
    samples, _ = soundfile.read(trimmed, dtype="float32")
    return 0.5 * samples / np.abs(samples).max()


def count_forwards(model) -> tuple[list[int], object]:
    calls: list[int] = []
    hook = model.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[1]))
    return calls, hook


@pytest.mark.parametrize("kind", ["zeros", "white noise"])
def test_silence_and_noise_give_no_text_and_no_model_run(transcriber, model, kind):
    rng = np.random.default_rng(4)
    samples = {
        "zeros": np.zeros(5 * SAMPLE_RATE, dtype=np.float32),
        "white noise": (0.01 * rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32),  # -40 dB
    }[kind]
    calls, hook = count_forwards(model)
    try:
        transcript = transcriber.transcribe(samples)
    finally:
        hook.remove()
    assert transcript.text == "" and transcript.segments == () and transcript.warnings == ()
    assert calls == []
    assert transcript.duration == pytest.approx(5.0)


@needs_espeak
def test_speech_between_silences_is_kept(tmp_path, transcriber, model):
    speech = spoken(tmp_path, "Sparse mixtures of experts route every frame to one expert")
    noise = (0.003 * np.random.default_rng(5).standard_normal(2 * SAMPLE_RATE)).astype(np.float32)
    samples = np.concatenate([np.zeros(2 * SAMPLE_RATE, np.float32), speech, noise])
    start, stop = 2.0, 2.0 + len(speech) / SAMPLE_RATE
    calls, hook = count_forwards(model)
    try:
        transcript = transcriber.transcribe(samples)
    finally:
        hook.remove()
    assert len(transcript.segments) == len(calls) >= 1
    first, last = transcript.segments[0], transcript.segments[-1]
    # The speech, with the detector's padding (0.2 s) and its lag (its probabilities trail the
    # audio by a few 32 ms windows).
    assert start - 0.3 < first.start <= start
    assert stop <= last.end < stop + 0.8
    assert transcript.text == " ".join(s.text for s in transcript.segments if s.text)


@needs_espeak
def test_a_long_recording_is_cut_at_its_pauses(tmp_path, model, tokenizer):
    speech = spoken(tmp_path, "The omni router shares one routing matrix across all layers")
    pause = np.zeros(int(1.5 * SAMPLE_RATE), np.float32)
    samples = np.concatenate([pause, *[np.concatenate([speech, pause]) for _ in range(6)]])
    step = (len(speech) + len(pause)) / SAMPLE_RATE
    bursts = [
        (1.5 + index * step, 1.5 + index * step + len(speech) / SAMPLE_RATE) for index in range(6)
    ]
    transcriber = Transcriber(model, tokenizer, FeatureConfig(), chunk_seconds=30.0)
    segments = transcriber.transcribe(samples).segments
    # One segment per burst although the whole fits in one chunk: cut in every pause, and no
    # segment reaches into the middle of a pause.
    assert len(segments) == len(bursts)
    for segment, (start, stop) in zip(segments, bursts):
        assert start - 0.3 < segment.start <= start
        assert stop <= segment.end < stop + 0.8


@needs_espeak
def test_speech_longer_than_a_chunk_is_cut_at_quiet_points(tmp_path, model, tokenizer):
    speech = spoken(tmp_path, SENTENCES)
    transcriber = Transcriber(model, tokenizer, FeatureConfig(), chunk_seconds=4.0)
    spans = transcriber.spans(speech)
    assert len(spans) >= 3
    assert all(len(span) <= 4 * SAMPLE_RATE for span in spans)
    assert all(a.stop <= b.start for a, b in itertools.pairwise(spans))
    # Every cut lies where the speech is quiet: well below its average level.
    level = np.sqrt(np.mean(speech**2))
    for span in spans[:-1]:
        around = speech[span.stop - 160 : span.stop + 160]
        assert np.sqrt(np.mean(around**2)) < 0.3 * level


def test_too_short_audio_gives_a_warning(tmp_path, transcriber, model):
    short = tmp_path / "click.wav"
    soundfile.write(short, 0.3 * np.ones(800, dtype=np.float32), SAMPLE_RATE)  # 0.05 s
    calls, hook = count_forwards(model)
    try:
        transcript = transcriber.transcribe(short)
    finally:
        hook.remove()
    assert transcript.text == "" and calls == []
    assert len(transcript.warnings) == 1
    assert str(short) in transcript.warnings[0] and "too short" in transcript.warnings[0]
    assert transcript.to_dict()["warnings"] == list(transcript.warnings)


def test_a_directory_is_named_as_one(tmp_path, transcriber):
    (result,) = transcribe_files(transcriber, [tmp_path])
    assert result.transcript is None
    assert result.error == f"{tmp_path}: is a directory, not an audio file"
