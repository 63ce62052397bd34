"""The routing analysis's settings (`omnirouter analyze`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omnirouter.analysis.permutation import DEFAULT_PROBABILITIES
from omnirouter.analysis.summary import SummaryConfig
from omnirouter.config import require


@dataclass(frozen=True)
class AnalysisConfig:
    set_name: str = "dev"  # the evaluation set analysed
    num_shown_utterances: int = 3  # utterances drawn in Fig. 2 (a seeded random choice)
    permutation_probabilities: list[float] = field(
        default_factory=lambda: list(DEFAULT_PROBABILITIES)
    )
    seed: int = 0  # choice of shown utterances and the permutation test's random experts
    max_utterances: int = 0  # analyse only the set's first N utterances; 0 = all
    normalizer: str = "whisper-english"  # text normaliser before WER (see evaluate.normalize)
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1", ...
    corpus_dir: str | None = None  # read the set from this corpus instead of the model's own
    summary: SummaryConfig = field(default_factory=SummaryConfig)

    def __post_init__(self) -> None:
        for name in ("num_shown_utterances", "max_utterances"):
            require(getattr(self, name) >= 0, f"analysis.{name}", ">= 0", getattr(self, name))
        probabilities = self.permutation_probabilities
        require(
            all(0 <= p <= 1 for p in probabilities),
            "analysis.permutation_probabilities",
            "in [0, 1]",
            probabilities,
        )
