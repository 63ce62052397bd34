"""Tiny speech made on the spot with espeak-ng, and a tiny imported corpus built from it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "a stitch in time saves nine",
    "all that glitters is not gold",
    "the early bird catches the worm",
    "actions speak louder than words",
    "better late than never",
    "every cloud has a silver lining",
    "fortune favours the bold",
    "practice makes perfect",
    "time flies like an arrow",
    "where there is smoke there is fire",
    "do not count your chickens before they hatch",
    "an apple a day keeps the doctor away",
    "birds of a feather flock together",
    "the pen is mightier than the sword",
)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Per-utterance feature extraction gains nothing from intra-op threads and, on a busy
    2-core machine, loses a lot to them (DataLoader workers use one thread for the same reason)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


def speak(text: str, path: Path, speed: int = 170, voice: str = "en-us") -> Path:
    """A wav file (22.05 kHz mono, espeak-ng's native rate) of `text`."""
    require_tool("espeak-ng")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    return path


def sox(*arguments: str | Path) -> None:
    require_tool("sox")
    subprocess.run(["sox", *map(str, arguments)], check=True, capture_output=True)


@pytest.fixture(scope="session")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One espeak-ng wav per sentence of SENTENCES, two voices alternating."""
    directory = tmp_path_factory.mktemp("spoken")
    return {
        text: speak(text, directory / f"{index:02d}.wav", voice=("en-us", "en")[index % 2])
        for index, text in enumerate(SENTENCES)
    }


def write_tsv(path: Path, rows: list[tuple[Path, str]]) -> Path:
    path.write_text("".join(f"{audio}\t{text}\n" for audio, text in rows))
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory, spoken: dict[str, Path]) -> Path:
    """A corpus imported from TSV tables: train (10 utterances), dev (3), test (3), and a
    small unigram tokenizer at the default location for vocab_size 60."""
    from omnirouter.data.prepare import import_corpus, train_corpus_tokenizer
    from omnirouter.data.tokenizer import TokenizerConfig

    tables = tmp_path_factory.mktemp("tables")
    items = [(path, text) for text, path in spoken.items()]
    sources = {
        "train": write_tsv(tables / "train.tsv", items[:10]),
        "dev": write_tsv(tables / "dev.tsv", items[10:13]),
        "test": write_tsv(tables / "test.tsv", items[13:16]),
    }
    corpus_dir = tmp_path_factory.mktemp("corpus")
    import_corpus(corpus_dir, "tiny", sources)
    train_corpus_tokenizer(corpus_dir, TokenizerConfig(vocab_size=60))
    return corpus_dir


def measured_snr_db(mixed, clean) -> float:
    """SNR of `mixed` (peak-normalised speech + interference) against the clean speech: the
    speech's gain found by least squares, the rest counted as interference."""
    import numpy as np

    gain = np.dot(mixed, clean) / np.dot(clean, clean)
    residual = mixed - gain * clean
    return float(10 * np.log10(np.mean((gain * clean) ** 2) / np.mean(residual**2)))
