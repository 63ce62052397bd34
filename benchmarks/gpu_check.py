"""`make gpu-check`: the CUDA path end to end on one GPU, in a few minutes.

1. MoE layer: forward + backward under bf16 autocast of a dense FFN and of the MoE layer with
   the `loop` and `grouped_mm` dispatches, timed side by side (moe_layer.time_interleaved),
   and the grouped_mm output checked against the fp32 loop's;
2. training: an Omni-router model of the train-step benchmark's "mid" size (D = 256, 6 blocks,
   FFN 1024, 4 experts, top-1) trained under bf16 autocast by the project's trainer on the
   train set of the tiny built-in corpus (built under the work directory when absent);
3. decoding: its checkpoint decodes the dev set twice, on the device under bf16 autocast and
   on the CPU in fp32 (`evaluate_checkpoint`); at most `--max-mismatches` utterances' two
   transcripts may differ by more than `--char-tolerance` of their characters.

Prints a summary and a final PASS or FAIL line; exits 1 on FAIL. Without CUDA it prints one
line and exits 0. `--device cpu` runs all three parts with the CPU standing in for the GPU
(with `--frames`, `--steps` ... to shrink them); evaluation on the CPU runs in fp32 whatever
the device (`inference_context` autocasts on CUDA only), so there both decodes are fp32.

Usage: python benchmarks/gpu_check.py [--steps 300] [--work-dir DIR] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import torch

from moe_layer import time_interleaved  # benchmarks/ is on the path of a script run from there
from omnirouter.data.augment import SpecAugmentConfig
from omnirouter.data.config import DataConfig
from omnirouter.data.tokenizer import TokenizerConfig
from omnirouter.evaluate.model_file import step_checkpoints
from omnirouter.model.config import Activation, Dispatch, Family, PositionEncoding
from omnirouter.model.moe import Experts, MoEFeedForward, Router, grouped_mm_supported
from omnirouter.model.transformer import FeedForward
from omnirouter.train.config import OptimizerConfig, RunConfig, TrainConfig
from omnirouter.train.metrics import TrainRecord, read_metrics
from omnirouter.train.schedule import ScheduleConfig
from train_step import SIZES, model_config

REPO = Path(__file__).resolve().parents[1]
TINY_CORPUS_CONFIG = REPO / "configs" / "data" / "builtin-tiny.yaml"
TRAIN_EXPERTS = 4
VOCAB_SIZE = 64  # the demo's word pieces
# bf16 keeps 8 bits of mantissa: tests/model/test_moe.py holds the grouped_mm dispatch under
# bf16 autocast within 4% of the fp32 loop in norm, outputs and gradients.
MAX_BF16_RELATIVE_ERROR = 4e-2


@dataclass(frozen=True)
class Verdict:
    part: str
    passed: bool
    summary: str  # one line for the final summary


# ---------------------------------------------------------------- 1. the MoE layer


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    difference = actual.detach().float() - expected.detach().float()
    return float(difference.norm() / expected.detach().float().norm())


def bf16(fn: Callable[[], torch.Tensor], device: torch.device) -> Callable[[], torch.Tensor]:
    """`fn` under bf16 autocast, as the trainer runs the model (the backward outside it)."""

    def run() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return fn()

    return run


@dataclass(frozen=True)
class LayerRow:
    printed: str
    grouped_mm_error: float | None  # relative to the fp32 loop, in norm; None: not run
    failure: str | None


def time_layers(
    args: argparse.Namespace, num_experts: int, dense: FeedForward, x_BTD: torch.Tensor
) -> LayerRow:
    """The dense FFN, then the MoE layer's loop and grouped_mm dispatches on the same weights,
    interleaved; grouped_mm's output checked against the fp32 loop's first."""
    device = x_BTD.device
    valid_BT = torch.ones(x_BTD.shape[:2], dtype=torch.bool, device=device)
    router = Router(args.model_dim, num_experts).to(device)
    experts = Experts(num_experts, args.model_dim, args.ffn_dim, Activation.relu, 0.0).to(device)
    loop = MoEFeedForward(router, experts, layer=0, dispatch="loop")
    grouped = MoEFeedForward(router, experts, layer=0, dispatch="grouped_mm")
    fns = [lambda: dense(x_BTD, valid_BT).out_BTD, lambda: loop(x_BTD, valid_BT).out_BTD]
    error, failure = None, None
    with torch.no_grad():
        expected = loop(x_BTD, valid_BT).out_BTD  # fp32
        try:
            error = relative_error(
                bf16(lambda: grouped(x_BTD, valid_BT).out_BTD, device)(), expected
            )
        except RuntimeError as raised:  # e.g. a GPU whose torch has no grouped GEMM for it
            reason = str(raised).splitlines()[0]
            print(f"  E={num_experts}: grouped_mm not run: {reason}")
            # A failure only where `dispatch=auto` would take grouped_mm (CUDA sm90+, bf16).
            if grouped_mm_supported(device, torch.bfloat16):
                failure = f"E={num_experts}: grouped_mm failed: {reason}"
    if error is not None:
        fns.append(lambda: grouped(x_BTD, valid_BT).out_BTD)
        if not error < MAX_BF16_RELATIVE_ERROR:
            failure = f"E={num_experts}: grouped_mm off by {error:.1%} in norm"
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    parameters = [x_BTD, *dense.parameters(), *router.parameters(), *experts.parameters()]
    dense_s, *results = time_interleaved(
        [bf16(fn, device) for fn in fns], parameters, args.repeats, synchronize
    )
    # A ratio per repeat (both measured within moments of each other), then the median.
    cells = [
        f"{statistics.median(fn_s) * 1e3:7.2f} ms "
        f"{statistics.median(t / d for t, d in zip(fn_s, dense_s)):5.2f}x"
        for fn_s in results
    ]
    cells += [f"{'-':>16}"] * (2 - len(cells))
    cells.append(f"{'-':>18}" if error is None else f"{error:>18.2%}")
    dense_ms = statistics.median(dense_s) * 1e3
    return LayerRow(f"{num_experts:>3} | {dense_ms:6.2f} ms | {' | '.join(cells)}", error, failure)


def check_layers(args: argparse.Namespace, device: torch.device) -> Verdict:
    print(
        f"\n[1/3] MoE layer, forward + backward, bf16 autocast, T={args.frames} "
        f"D={args.model_dim} F={args.ffn_dim} top-1, {args.repeats} repeats"
    )
    header = (
        f"{'E':>3} | {'dense FFN':>9} | {'loop':>16} | {'grouped_mm':>16} | "
        f"{'grouped_mm vs fp32':>18}"
    )
    print(header)
    print("-" * len(header))
    torch.manual_seed(0)
    x_BTD = torch.randn(1, args.frames, args.model_dim, device=device, requires_grad=True)
    dense = FeedForward(args.model_dim, args.ffn_dim, Activation.relu, dropout=0.0).to(device)
    rows = []
    for num_experts in args.experts:
        rows.append(time_layers(args, num_experts, dense, x_BTD))
        print(rows[-1].printed)
    print(
        "ms: median over repeats; ratios: median over repeats of time / dense FFN time in the "
        "same repeat; last column: |grouped_mm - fp32 loop| / |fp32 loop|, "
        f"at most {MAX_BF16_RELATIVE_ERROR:.0%}"
    )
    failures = [row.failure for row in rows if row.failure is not None]
    errors = [row.grouped_mm_error for row in rows if row.grouped_mm_error is not None]
    summary = f"E = {', '.join(map(str, args.experts))} timed"
    if errors:
        summary += f"; grouped_mm within {max(errors):.2%} of fp32"
    return Verdict("MoE layer", not failures, "; ".join(failures) or summary)


# ---------------------------------------------------------------- 2. training


def ensure_tiny_corpus(corpus_dir: Path, sets: Sequence[str]) -> None:
    """The listed sets of the tiny built-in corpus, synthesised offline when absent (the other
    sets of builtin-tiny.yaml, out-of-domain tests, are not needed here)."""
    from omnirouter.config import load_config
    from omnirouter.data.synth.build import build_corpus
    from omnirouter.data.synth.config import SynthConfig
    from omnirouter.experiment.stages import corpus_pending

    if corpus_pending(corpus_dir, sets) is None:
        return
    config = load_config(SynthConfig, [TINY_CORPUS_CONFIG])
    config = dataclasses.replace(config, sets=[s for s in config.sets if s.name in sets])
    print(f"\nbuilding the {'/'.join(sets)} sets of {TINY_CORPUS_CONFIG.name} in {corpus_dir}")
    clock = time.perf_counter()
    build_corpus(config, corpus_dir)
    print(f"corpus built in {time.perf_counter() - clock:.0f} s")


def run_config(args: argparse.Namespace, corpus_dir: Path, device: torch.device) -> RunConfig:
    model = model_config(args.size, Family.omni, TRAIN_EXPERTS, PositionEncoding.convolution)
    data = DataConfig(
        corpus_dir=str(corpus_dir),
        dev_set=args.set,
        max_duration=args.batch_seconds,
        max_utterance_seconds=min(30.0, args.batch_seconds),
        num_buckets=2,  # a few minutes of training speech
        num_workers=args.workers,
        spec_augment=SpecAugmentConfig(enabled=False),  # as in the demo
        tokenizer=TokenizerConfig(vocab_size=VOCAB_SIZE),
    )
    warmup = max(1, args.steps // 10)
    train = TrainConfig(
        max_steps=args.steps,
        device=str(device),
        precision="bf16",
        log_every=args.log_every,
        valid_every=0,
        checkpoint_every=args.steps,
        keep_last=1,
        progress=False,
        optimizer=OptimizerConfig(peak_lr=args.peak_lr, grad_clip_norm=1.0),
        schedule=ScheduleConfig(warmup_steps=warmup, cosine_steps=args.steps - warmup),
    )
    return RunConfig(dataclasses.replace(model, dispatch=Dispatch(args.dispatch)), data, train)


def check_training(config: RunConfig, exp_dir: Path, device: torch.device) -> Verdict:
    from omnirouter.train.trainer import train

    model, steps = config.model, config.train.max_steps
    dispatch = model.dispatch
    if dispatch == "auto":
        chosen = "grouped_mm" if grouped_mm_supported(device, torch.bfloat16) else "loop"
        dispatch += f" ({chosen} here)"
    print(
        f"\n[2/3] training: omni, D={model.model_dim}, {model.num_layers} blocks, "
        f"FFN {model.ffn_dim}, {model.num_experts} experts, top-{model.top_k}, dispatch "
        f"{dispatch}, {steps} steps of <= {config.data.max_duration:g} s batches, bf16 "
        f"autocast, {config.data.num_workers} loader workers"
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    clock = time.perf_counter()
    result = train(config, exp_dir)
    seconds = time.perf_counter() - clock
    records = read_metrics(exp_dir).train
    print_loss_curve(records)
    # The first window holds the warm-up (kernel choice, allocator, first batches).
    rates = [record.audio_seconds_per_second for record in records[1:] or records]
    memory = (
        f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
        if device.type == "cuda"
        else "not measured on the CPU"
    )
    print(
        f"{steps} steps in {seconds:.0f} s; {statistics.median(rates):.0f} audio-s/s (median "
        f"over the logged windows after the first; the loader included); peak memory {memory}"
    )
    losses = [record.ctc_loss for record in records]
    first, last = first_and_last_losses(losses)
    failures = []
    if result.step != steps or result.interrupted:
        failures.append(f"stopped at step {result.step} of {steps}")
    if not all(math.isfinite(loss) for loss in losses):
        failures.append("non-finite loss")
    elif not last < first:
        failures.append(f"the CTC loss did not fall ({first:.3f} -> {last:.3f})")
    summary = "; ".join(failures) or (
        f"CTC loss {first:.3f} -> {last:.3f}, {statistics.median(rates):.0f} audio-s/s, peak "
        f"memory {memory}, {records[-1].skipped_nonfinite} non-finite steps skipped"
    )
    return Verdict("training", not failures, summary)


def print_loss_curve(records: Sequence[TrainRecord]) -> None:
    print(f"{'step':>6} {'ctc loss':>9} {'balance':>8} {'audio-s/s':>10}")
    for record in records:
        print(
            f"{record.step:>6} {record.ctc_loss:>9.3f} "
            f"{record.load_balance_loss:>8.3f} {record.audio_seconds_per_second:>10.0f}"
        )


def first_and_last_losses(losses: Sequence[float]) -> tuple[float, float]:
    """Means of the first and of the last third of the records: batches differ in length, and
    so in loss, from one record to the next."""
    third = max(1, len(losses) // 3)
    return statistics.mean(losses[:third]), statistics.mean(losses[-third:])


# ---------------------------------------------------------------- 3. decoding


@dataclass(frozen=True)
class TranscriptDifference:
    cut_id: str
    edits: int  # character edits (jiwer) from the reference transcript to the device's
    characters: int  # of the longer of the two

    @property
    def fraction(self) -> float:
        return self.edits / max(self.characters, 1)


def transcript_differences(
    hypotheses: Mapping[str, str], reference: Mapping[str, str]
) -> list[TranscriptDifference]:
    """The utterances whose two transcripts are not identical, in the reference's order."""
    differences = []
    for cut_id, expected in reference.items():
        actual = hypotheses[cut_id]
        if actual != expected:
            counts = jiwer.process_characters(expected, actual)
            edits = counts.substitutions + counts.deletions + counts.insertions
            differences.append(TranscriptDifference(cut_id, edits, max(len(expected), len(actual))))
    return differences


def judge_transcripts(
    hypotheses: Mapping[str, str],
    reference: Mapping[str, str],
    max_mismatches: int,
    char_tolerance: float,
) -> Verdict:
    """Pass when at most `max_mismatches` utterances' transcripts differ by more than
    `char_tolerance` of their characters (0: by anything at all). bf16 alone makes greedy CTC
    transcripts differ by a character or two: on the CPU, bf16 autocast against fp32 changed
    9 of the 17 tiny-corpus dev transcripts of a demo-size model trained 300 steps in fp32 (by
    at most 18% of their characters, 3% over the set) and 40 of 100 built-in dev transcripts of
    the demo's Omni-router model at step 750 (at most 13%); a broken path changes far more."""
    only_one = sorted(hypotheses.keys() ^ reference.keys())
    if only_one:
        return Verdict("decoding", False, f"utterances only one decode has: {', '.join(only_one)}")
    if not reference:
        return Verdict("decoding", False, "no utterances decoded")
    differences = transcript_differences(hypotheses, reference)
    mismatches = [d for d in differences if d.fraction > char_tolerance]
    total = len(reference)
    summary = f"transcripts identical on {total - len(differences)} of {total} utterances"
    if len(differences) > len(mismatches):
        summary += (
            f", within {char_tolerance:.0%} of their characters on "
            f"{len(differences) - len(mismatches)} more"
        )
    if mismatches:
        listed = ", ".join(f"{d.cut_id} ({d.edits}/{d.characters})" for d in mismatches)
        summary += f"; differ by more on {len(mismatches)} (at most {max_mismatches} may): {listed}"
    return Verdict("decoding", len(mismatches) <= max_mismatches, summary)


def check_decoding(
    exp_dir: Path,
    set_name: str,
    device: torch.device,
    max_mismatches: int,
    char_tolerance: float,
) -> Verdict:
    from omnirouter.evaluate.suite import evaluate_checkpoint

    checkpoint = step_checkpoints(exp_dir)[-1]
    precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    print(
        f"\n[3/3] decoding {set_name} with {checkpoint.name}, twice: on {device} in {precision}, "
        "and on the CPU in fp32 for reference"
    )
    transcripts = []
    for label, where in (("device", device), ("reference", torch.device("cpu"))):
        # evaluate_checkpoint writes the set's files (errs, recogs, WER table) under out_dir.
        out_dir = exp_dir / f"eval-{label}"
        score = evaluate_checkpoint(checkpoint, [set_name], out_dir, device=str(where)).scores[0]
        transcripts.append({u.cut_id: u.hypothesis for u in score.utterances})
        empty = sum(not u.hypothesis.strip() for u in score.utterances)
        print(
            f"{label:<9} ({where}): WER {score.wer:.1%}, CER {score.cer:.1%} over "
            f"{score.num_utterances} utterances ({empty} empty transcripts); files in {out_dir}"
        )
    differences = transcript_differences(*transcripts)
    for difference in differences:
        print(
            f"  differs: {difference.cut_id}, {difference.edits} of {difference.characters} "
            f"characters: {transcripts[1][difference.cut_id]!r} -> "
            f"{transcripts[0][difference.cut_id]!r}"
        )
    edits = sum(difference.edits for difference in differences)
    characters = sum(len(text) for text in transcripts[1].values())
    print(f"the two decodes differ in {edits} of {characters} characters")
    verdict = judge_transcripts(*transcripts, max_mismatches, char_tolerance)
    print(verdict.summary)
    return verdict


# ---------------------------------------------------------------- the whole check


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1 ... or cpu (a stand-in)")
    parser.add_argument("--work-dir", type=Path, help="kept afterwards (default: a temp dir)")
    parser.add_argument(
        "--corpus", type=Path, help="a built corpus (default: the tiny one, in the work dir)"
    )
    layer = parser.add_argument_group("1. MoE layer")
    layer.add_argument("--frames", type=int, default=16384)
    layer.add_argument("--model-dim", type=int, default=512)
    layer.add_argument("--ffn-dim", type=int, default=4096)
    layer.add_argument("--experts", type=int, nargs="+", default=[2, 4, 8])
    layer.add_argument("--repeats", type=int, default=20)
    training = parser.add_argument_group("2. training")
    training.add_argument("--size", choices=sorted(SIZES), default="mid")
    training.add_argument("--steps", type=int, default=300)
    training.add_argument("--log-every", type=int, default=25, help="steps per loss record")
    training.add_argument("--batch-seconds", type=float, default=60.0)
    training.add_argument("--peak-lr", type=float, default=3e-3)
    training.add_argument("--workers", type=int, default=2, help="loader processes")
    training.add_argument("--dispatch", choices=["auto", "loop", "grouped_mm"], default="auto")
    decoding = parser.add_argument_group("3. decoding")
    decoding.add_argument("--set", default="dev", help="the set decoded twice")
    decoding.add_argument(
        "--max-mismatches",
        type=int,
        default=2,
        help="utterances whose transcripts may differ by more than --char-tolerance",
    )
    decoding.add_argument(
        "--char-tolerance",
        type=float,
        default=0.25,
        help="fraction of an utterance's characters bf16 may change (0: none)",
    )
    return parser.parse_args(argv)


def run_part(name: str, part: Callable[[], Verdict]) -> Verdict:
    """A part's verdict; an exception fails the part (traceback on stderr), not the script."""
    try:
        return part()
    except Exception as error:
        traceback.print_exc()
        return Verdict(name, False, f"{type(error).__name__}: {error}")


def run_parts(args: argparse.Namespace, device: torch.device, work_dir: Path) -> list[Verdict]:
    corpus_dir = args.corpus or work_dir / "builtin-tiny"
    exp_dir = work_dir / "exp"
    if exp_dir.exists():  # a previous check's: the trainer refuses to overwrite it
        shutil.rmtree(exp_dir)
    verdicts = [run_part("MoE layer", lambda: check_layers(args, device))]

    def training() -> Verdict:
        if args.corpus is None:
            ensure_tiny_corpus(corpus_dir, ["train", args.set])
        return check_training(run_config(args, corpus_dir, device), exp_dir, device)

    def decoding() -> Verdict:
        return check_decoding(exp_dir, args.set, device, args.max_mismatches, args.char_tolerance)

    verdicts.append(run_part("training", training))
    if step_checkpoints(exp_dir):  # also after a loss that did not fall
        verdicts.append(run_part("decoding", decoding))
    else:
        verdicts.append(Verdict("decoding", False, "not run: training left no checkpoint"))
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu-check: no CUDA device here (torch {torch.__version__}, cuda available: "
            f"{torch.cuda.is_available()}); nothing to check"
        )
        return 0
    if device.type == "cuda":
        name = f"{torch.cuda.get_device_name(device)}, bf16: {torch.cuda.is_bf16_supported()}"
    else:
        name = "the CPU standing in for a GPU"
    print(f"gpu-check: torch {torch.__version__}, {device} ({name})")
    clock = time.perf_counter()
    if args.work_dir is not None:
        print(f"work dir {args.work_dir} (kept)")
        verdicts = run_parts(args, device, args.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as temporary:
            print(f"work dir {temporary} (removed at the end; --work-dir DIR keeps one)")
            verdicts = run_parts(args, device, Path(temporary))
    print(f"\nsummary ({time.perf_counter() - clock:.0f} s):")
    for verdict in verdicts:
        print(
            f"  {'PASS' if verdict.passed else 'FAIL'}  {verdict.part + ':':<11} {verdict.summary}"
        )
    passed = all(verdict.passed for verdict in verdicts)
    print(f"gpu-check: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
