"""Run sox, and write audio files so that a killed build never leaves a truncated one behind."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile

# -R: repeatable (fixed dither seed), so a rebuild writes the same samples.
# -G: guard against clipping by lowering the gain where an effect would clip.
_SOX = ("sox", "-R", "-G", "-V1")
PEAK_DB = -3.0  # every stored recording is normalised to this peak level


@contextlib.contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary name next to `path`; on success rename it to `path`, else remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_stored(source: Path, sample_rate: int) -> np.ndarray:
    """A stored recording's samples (float64), checked to be mono at `sample_rate`."""
    samples_S, source_rate = soundfile.read(source, dtype="float64")
    if source_rate != sample_rate or samples_S.ndim != 1:
        raise ValueError(f"{source}: expected mono audio at {sample_rate} Hz")
    return samples_S


def write_stored(path: Path, samples_S: np.ndarray, sample_rate: int) -> None:
    """Write float samples in [-1, 1] as a stored recording (16-bit mono WAV), atomically."""
    with written_atomically(path) as partial:
        soundfile.write(partial, samples_S, sample_rate, subtype="PCM_16", format="WAV")


def run_sox(arguments: Sequence[str], input_bytes: bytes | None = None, context: str = "") -> bytes:
    """Run `sox -R -G ARGUMENTS`, raising an error that shows the command and sox's message."""
    command = [*_SOX, *arguments]
    result = subprocess.run(command, input=input_bytes, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"sox failed{f' ({context})' if context else ''}: {message}\n{command}")
    return result.stdout


def output_format(sample_rate: int) -> list[str]:
    """sox output options of every stored recording: 16-bit mono WAV at `sample_rate`."""
    return ["-t", "wav", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(sample_rate)]


def store_wav(
    source: Path | bytes,
    path: Path,
    sample_rate: int,
    input_options: Sequence[str] = (),
    effects: Sequence[str] = (),
    context: str = "",
) -> None:
    """Convert `source` (a file, or bytes sox reads from stdin) to a stored recording at `path`.

    `input_options` describe raw bytes (for example `-t raw -e floating-point ...`); `effects`
    run before the peak normalisation.
    """
    input_name = "-" if isinstance(source, bytes) else str(source)
    input_bytes = source if isinstance(source, bytes) else None
    if input_bytes is not None and not input_options:
        input_options = ["-t", "wav"]
    with written_atomically(path) as partial:
        run_sox(
            [
                *input_options,
                input_name,
                *output_format(sample_rate),
                str(partial),
                *effects,
                "norm",
                str(PEAK_DB),
            ],
            input_bytes=input_bytes,
            context=context,
        )
