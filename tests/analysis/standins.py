"""A stand-in for a prepared evaluation set, built from real pieces: a tiny model from
`build_model`, synthetic log-mel features with quiet and loud stretches, transcripts tokenised
by a real (tiny) sentencepiece `Tokenizer`, and the real recognition loop and WER scoring."""

from __future__ import annotations

from pathlib import Path

import torch

from omnirouter.analysis.measure import Subject
from omnirouter.analysis.permutation import OnOutput, WerEvaluation
from omnirouter.data.batch import Batch
from omnirouter.data.tokenizer import Tokenizer
from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.recognize import recognize, score_set
from omnirouter.model import CtcModel, RoutingOverride, build_model
from tests.models import tiny_config

SENTENCES = (
    "the cat sat on the mat",
    "a dog ran in the park",
    "she sells sea shells",
    "the quick brown fox jumps",
    "over the lazy dog again",
    "we walked home at night",
    "rain fell on the old town",
    "he reads a book by the fire",
)


def train_tokenizer(directory: Path) -> Tokenizer:
    return Tokenizer.train(SENTENCES * 4, directory, vocab_size=30)


def tiny_model(family: str, vocab_size: int = 30, num_experts: int = 4, seed: int = 0) -> CtcModel:
    torch.manual_seed(seed)
    config = tiny_config(family, num_layers=4, num_experts=num_experts)
    return build_model(config, vocab_size=vocab_size).eval()


def utterance_features(frames: int, generator: torch.Generator) -> torch.Tensor:
    """(T, 80) log-mel-like features: quiet (about -8) at both ends, loud (about 0) between."""
    features_TF = torch.randn(frames, 80, generator=generator)
    edge = frames // 5
    features_TF[:edge] = features_TF[:edge] * 0.3 - 8.0
    features_TF[frames - edge :] = features_TF[frames - edge :] * 0.3 - 8.0
    return features_TF


def make_batches(
    num_utterances: int = 6, batch_size: int = 3, seed: int = 0, min_frames: int = 80
) -> list[Batch]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, num_utterances, batch_size):
        count = min(batch_size, num_utterances - start)
        lengths = torch.randint(min_frames, 2 * min_frames, (count,), generator=generator)
        features_BTF = torch.zeros(count, int(lengths.max()), 80)
        for index, length in enumerate(lengths.tolist()):
            features_BTF[index, :length] = utterance_features(length, generator)
        texts = tuple(SENTENCES[(start + index) % len(SENTENCES)] for index in range(count))
        # Recognition reads only features, lengths, ids and texts; targets are not needed.
        batches.append(
            Batch(
                features_BTF=features_BTF,
                feature_lens_B=lengths,
                targets_BU=torch.ones(count, 1, dtype=torch.long),
                target_lens_B=torch.ones(count, dtype=torch.long),
                cut_ids=tuple(f"utt-{start + index:03d}" for index in range(count)),
                texts=texts,
            )
        )
    return batches


def evaluation(
    model: CtcModel, batches: list[Batch], tokenizer: Tokenizer, set_name: str = "dev"
) -> WerEvaluation:
    normalizer = get_normalizer("none")

    def evaluate(override: RoutingOverride | None, on_output: OnOutput | None) -> float:
        recognitions = recognize(
            model, batches, tokenizer, "cpu", override, on_output, progress=False
        )
        return score_set(set_name, recognitions, normalizer).wer

    return evaluate


def subject(
    name: str, family: str, batches: list[Batch], tokenizer: Tokenizer, seed: int = 0
) -> Subject:
    model = tiny_model(family, vocab_size=tokenizer.vocab_size, seed=seed)
    return Subject(
        name=name,
        family=family,
        experiment="",
        stack_frames=4,
        cut_ids=tuple(cut_id for batch in batches for cut_id in batch.cut_ids),
        evaluate=evaluation(model, batches, tokenizer),
    )
