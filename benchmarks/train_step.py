"""Whole training steps of dense, Switch and Omni-router models, interleaved, and the loader's rate.

A step is what the trainer runs: forward, CTC + load-balance loss, backward, clipping, AdamW.
The three families are built at the same active size and stepped in turn on the same batches
(shaped like 60 s batches of the built-in corpus: bucketed utterances of 2 to 7 s, 80 log-mel
bins, word-piece targets), so a slow moment of the machine hits all three alike. Prints the median step time, the audio
seconds per second, and each family's step time as a ratio to dense (median of per-round
ratios). Nothing here asserts a time.

With `--corpus DIR` (a built corpus, e.g. data/builtin) it also times the training loader
alone, in this process, with log-mels computed on the fly and, when the corpus has them,
read from stored features: whether data or model sets the pace of one core.

Usage: python benchmarks/train_step.py [--sizes demo mid] [--repeats 10] [--corpus data/builtin]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from pathlib import Path

import torch

from moe_layer import cpu_name  # benchmarks/ is on the path of a script run from there
from omnirouter.data.batch import Batch
from omnirouter.data.config import DataConfig
from omnirouter.model import build_model, count_parameters
from omnirouter.model.config import Family, ModelConfig, PositionEncoding
from omnirouter.train.config import LossConfig, OptimizerConfig
from omnirouter.train.distributed import Runtime
from omnirouter.train.optimizer import build_optimizer
from omnirouter.train.step import train_step

FRAME_SHIFT_SECONDS = 0.01
FAMILIES = (Family.dense, Family.switch, Family.omni)
# The demo's model and a mid size between it and the paper's (84M-parameter trunk: D = 512).
SIZES = {
    "demo": dict(model_dim=96, num_heads=4, num_layers=4, ffn_dim=384),
    "mid": dict(model_dim=256, num_heads=4, num_layers=6, ffn_dim=1024),
}


def synthetic_batch(
    seconds: float,
    utterance_seconds: float,
    vocab_size: int,
    generator: torch.Generator,
    tokens_per_second: float = 7.0,
) -> Batch:
    """A bucketed batch as the sampler makes them: utterances of about `utterance_seconds`
    (±10%) until `seconds` of audio (at least one); random features and targets."""
    lengths: list[int] = []
    while not lengths or (sum(lengths) + utterance_seconds * 100) <= seconds * 100:
        spread = 0.9 + 0.2 * float(torch.rand((), generator=generator))
        lengths.append(int(utterance_seconds * 100 * spread))
    frames_B = torch.tensor(lengths)
    features_BTF = torch.randn(len(lengths), int(frames_B.max()), 80, generator=generator)
    features_BTF *= (torch.arange(features_BTF.shape[1])[None, :] < frames_B[:, None])[..., None]
    target_lens_B = (frames_B * FRAME_SHIFT_SECONDS * tokens_per_second).long().clamp(min=1)
    targets_BU = torch.randint(1, vocab_size, (len(lengths), int(target_lens_B.max())))
    targets_BU *= torch.arange(targets_BU.shape[1])[None, :] < target_lens_B[:, None]
    names = tuple(f"utt{index}" for index in range(len(lengths)))
    return Batch(features_BTF, frames_B, targets_BU, target_lens_B, names, names)


def model_config(
    size: str, family: Family, experts: int, position: PositionEncoding
) -> ModelConfig:
    # No dropout, as in the demo's recipe: on a CPU, drawing dropout masks (attention dropout
    # above all) costs as much as a fifth of a step at these sizes.
    return ModelConfig(
        family=family,
        num_experts=experts,
        position=position,
        dropout=0.0,
        attention_dropout=0.0,
        **SIZES[size],
    )


def time_steps(args: argparse.Namespace, size: str) -> None:
    device = torch.device(args.device)
    runtime = Runtime(device, 0, 1, torch.bfloat16 if args.bf16 else None)
    generator = torch.Generator().manual_seed(0)
    # The built-in corpus's utterances: median 3.6 s, 5-95% between 1.8 and 7.1 s.
    batches = [
        synthetic_batch(args.batch_seconds, length, args.vocab, generator)
        for length in (2.0, 3.5, 5.0, 7.0)
    ]
    audio_seconds = [batch.num_frames * FRAME_SHIFT_SECONDS for batch in batches]
    steppers = {}
    for family in FAMILIES:
        torch.manual_seed(0)
        config = model_config(size, family, args.experts, PositionEncoding(args.position))
        model = build_model(config, args.vocab).to(device).train()
        optimizer = build_optimizer(model, OptimizerConfig(peak_lr=1e-4))
        steppers[family] = (model, optimizer)

    def step(family: Family, batch: Batch) -> float:
        model, optimizer = steppers[family]
        clock = time.perf_counter()
        train_step(model, optimizer, [batch], runtime, LossConfig(), 1.0, FRAME_SHIFT_SECONDS)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - clock

    for family in FAMILIES:  # warm-up: allocator, kernels, AdamW state
        for batch in batches[:2]:
            step(family, batch)
    times: dict[Family, list[float]] = {family: [] for family in FAMILIES}
    ratios: dict[Family, list[float]] = {family: [] for family in FAMILIES}
    rates: dict[Family, list[float]] = {family: [] for family in FAMILIES}
    for repeat in range(args.repeats):
        index = repeat % len(batches)
        seconds = {family: step(family, batches[index]) for family in FAMILIES}
        for family in FAMILIES:
            times[family].append(seconds[family])
            ratios[family].append(seconds[family] / seconds[Family.dense])
            rates[family].append(audio_seconds[index] / seconds[family])
    parameters = {family: count_parameters(steppers[family][0]) for family in FAMILIES}
    print(f"\n{size}: {SIZES[size]}, {args.experts} experts, batches of ~{args.batch_seconds:g} s")
    print(f"{'family':<8} {'params':>8} {'ms/step':>9} {'audio-s/s':>10} {'x dense':>8}")
    for family in FAMILIES:
        print(
            f"{family.value:<8} {parameters[family] / 1e6:>7.2f}M "
            f"{statistics.median(times[family]) * 1e3:>9.1f} "
            f"{statistics.median(rates[family]):>10.0f} "
            f"{statistics.median(ratios[family]):>8.3f}"
        )


def time_loader(corpus: Path, batches: int, stored: bool, batch_seconds: float) -> None:
    from omnirouter.data.loader import build_train_loader
    from omnirouter.data.prepare import sets_lacking_features
    from omnirouter.data.tokenizer import Tokenizer

    if not (corpus / "corpus.json").is_file():
        print(f"loader: no corpus at {corpus} (omnirouter data synth --out {corpus})")
        return
    config = DataConfig(
        corpus_dir=str(corpus),
        max_duration=batch_seconds,
        max_utterance_seconds=min(30.0, batch_seconds),
        num_workers=0,
    )
    config = dataclasses.replace(
        config, features=dataclasses.replace(config.features, use_stored=stored)
    )
    if stored and sets_lacking_features(corpus, config.features, ["train"]):
        print(f"loader, stored features: none in {corpus} (omnirouter data features {corpus})")
        return
    tokenizers = sorted(corpus.glob("tokenizer_*"))
    if not tokenizers:
        print(f"loader: {corpus} has no tokenizer (omnirouter data tokenizer {corpus})")
        return
    try:
        loader = build_train_loader(config, Tokenizer.load(tokenizers[0]), seed=0)
        iterator = iter(loader)
        next(iterator)  # opening files, bucket estimate
        clock, audio = time.perf_counter(), 0.0
        for _, batch in zip(range(batches), iterator):
            audio += batch.num_frames * FRAME_SHIFT_SECONDS
    except (ValueError, FileNotFoundError) as error:
        print(f"loader ({'stored' if stored else 'on the fly'}): not measured: {error}")
        return
    rate = audio / (time.perf_counter() - clock)
    kind = "stored features" if stored else "log-mels on the fly"
    print(f"loader, one process, {kind:<20}: {rate:>8.0f} audio-s/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["demo", "mid"])
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10, help="interleaved rounds per size")
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--vocab", type=int, default=64, help="word pieces (the demo's: 64)")
    parser.add_argument(
        "--position", default="convolution", choices=[p.value for p in PositionEncoding]
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--corpus", type=Path, help="also time the training loader on it")
    parser.add_argument("--loader-batches", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {cpu_name()}, "
        f"{os.cpu_count()} CPUs, {args.threads} thread(s), device {args.device}"
        f"{', bf16 autocast' if args.bf16 else ''}"
    )
    for size in args.sizes:
        time_steps(args, size)
    if args.corpus is not None:
        print()
        for stored in (False, True):
            time_loader(args.corpus, args.loader_batches, stored, args.batch_seconds)


if __name__ == "__main__":
    main()
