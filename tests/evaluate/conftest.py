import shutil
import string
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from omnirouter.data.batch import Batch
from omnirouter.model import build_model
from tests.models import tiny_config


class CharacterTokenizer:
    """One token per letter or space (id 0 is the CTC blank), with the `decode` of a Tokenizer."""

    symbols = " " + string.ascii_lowercase

    @property
    def vocab_size(self) -> int:
        return len(self.symbols) + 1

    def encode(self, text: str) -> list[int]:
        return [self.symbols.index(char) + 1 for char in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.symbols[token - 1] for token in ids)


@pytest.fixture
def tokenizer() -> CharacterTokenizer:
    return CharacterTokenizer()


def tiny_model(family: str = "omni", vocab_size: int = 28, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(tiny_config(family, dropout=0.1, attention_dropout=0.1), vocab_size)


def make_batch(lengths: list[int], seed: int, prefix: str = "utt") -> Batch:
    generator = torch.Generator().manual_seed(seed)
    features = torch.zeros(len(lengths), max(lengths), 80)
    for row, length in enumerate(lengths):
        features[row, :length] = torch.randn(length, 80, generator=generator)
    return Batch(
        features_BTF=features,
        feature_lens_B=torch.tensor(lengths),
        targets_BU=torch.ones(len(lengths), 1, dtype=torch.long),
        target_lens_B=torch.ones(len(lengths), dtype=torch.long),
        cut_ids=tuple(f"{prefix}{row}" for row in range(len(lengths))),
        texts=tuple(f"reference {prefix} {row}" for row in range(len(lengths))),
    )


SENTENCES = {
    "dev": ["the cat sat on the mat", "Mr. Smith paid twenty five dollars"],
    "test": ["a dog ran in the park", "she sells sea shells", "colour and flavour"],
}


def speak(text: str, path: Path) -> Path:
    """Synthetic speech (espeak-ng) or, without the engine, a tone as long as the text."""
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    else:
        time = np.arange(int(0.06 * len(text) * 16000)) / 16000
        soundfile.write(path, 0.3 * np.sin(2 * np.pi * 220 * time), 16000)
    return path


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> Path:
    """A corpus (dev + test) written through the data package, with a trained tokenizer."""
    from omnirouter.data.imports import import_table
    from omnirouter.data.manifests import write_corpus
    from omnirouter.data.tokenizer import Tokenizer

    root = tmp_path_factory.mktemp("corpus")
    prepared = []
    for set_name, texts in SENTENCES.items():
        table = root / f"{set_name}.tsv"
        lines = [
            f"{speak(text, root / f'{set_name}{index}.wav').name}\t{text}\t{set_name}-{index}"
            for index, text in enumerate(texts)
        ]
        table.write_text("".join(line + "\n" for line in lines))
        prepared.append(import_table(table, set_name).prepared)
    write_corpus(root, "mini", prepared)
    texts = [text for texts in SENTENCES.values() for text in texts]
    Tokenizer.train(texts, root / "tokenizer", vocab_size=40)
    return root
