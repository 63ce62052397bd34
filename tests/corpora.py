"""Small synthetic corpora for tests, built with espeak-ng voices only (seconds to build)."""

from pathlib import Path

from omnirouter.data.synth.build import build_corpus
from omnirouter.data.synth.config import Role, SetConfig, SynthConfig, TextSplit


def espeak_corpus(
    corpus_dir: Path, train_minutes: float, dev_minutes: float, voices: list[str]
) -> Path:
    """A corpus with a `train` and a `dev` set read by the given espeak-ng voices."""
    config = SynthConfig(
        name="test-corpus",
        voice_pools={"training": [f"espeak:{voice}" for voice in voices]},
        sets=[
            SetConfig(
                name="train",
                role=Role.train,
                minutes=train_minutes,
                voice_pool="training",
                text_split=TextSplit.train,
            ),
            SetConfig(
                name="dev",
                role=Role.dev,
                minutes=dev_minutes,
                voice_pool="training",
                text_split=TextSplit.dev,
            ),
        ],
    )
    build_corpus(config, corpus_dir, jobs=2)
    return corpus_dir
