"""`omnirouter train` and `omnirouter average`."""

from __future__ import annotations

import argparse
import shlex
import signal
from pathlib import Path

from omnirouter.cli.arguments import positive_int
from omnirouter.errors import InterruptedRunError


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a dense, Switch or Omni-router model",
        description="Train from a YAML config with key.sub=value overrides. Several devices: "
        "torchrun --nproc_per_node N -m omnirouter train CONFIG ...",
    )
    train.add_argument(
        "inputs",
        nargs="+",
        metavar="CONFIG_OR_OVERRIDE",
        help="YAML run configs, merged left to right (see configs/), then dotted overrides "
        "such as model.num_experts=8",
    )
    train.add_argument(
        "--exp-dir", type=Path, help="experiment directory (default: exp/<config name>)"
    )
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.set_defaults(run=_run_train)

    average = subparsers.add_parser(
        "average", help="average the weights of the last or best n checkpoints of an experiment"
    )
    average.add_argument("exp_dir", type=Path)
    average.add_argument(
        "-n", "--num", type=positive_int, default=3, help="checkpoints to average (>= 1)"
    )
    average.add_argument(
        "--by",
        choices=("last", "best"),
        default="last",
        help="the n newest step checkpoints, or the n with the lowest dev WER (of those kept)",
    )
    average.add_argument(
        "--out", type=Path, help="output file (default: EXP/checkpoints/averaged-last<n>.pt)"
    )
    average.set_defaults(run=_run_average)


def _run_train(args: argparse.Namespace) -> int:
    from omnirouter.config import load_config
    from omnirouter.train.config import RunConfig
    from omnirouter.train.trainer import train

    overrides = [item for item in args.inputs if "=" in item]
    yaml_paths = [Path(item) for item in args.inputs if "=" not in item]
    if not yaml_paths:
        raise ValueError("give at least one YAML config before the overrides")
    config = load_config(RunConfig, yaml_paths, overrides)
    exp_dir = args.exp_dir or Path("exp") / yaml_paths[-1].stem
    result = train(config, exp_dir, resume=args.resume)
    best = f"{result.best_dev_wer:.2f}%" if result.best_dev_wer is not None else "not measured"
    if result.interrupted:
        resume = shlex.join(["omnirouter", "train", *args.inputs, "--exp-dir", str(exp_dir)])
        raise InterruptedRunError(
            f"interrupted at step {result.step}, checkpoint saved (best dev WER {best}); "
            f"continue with: {resume} --resume",
            result.stop_signal or signal.SIGTERM,
        )
    state = "stopped early" if result.stopped_early else "done"
    print(f"{state} at step {result.step}; best dev WER {best}; experiment in {result.exp_dir}")
    return 0


def _run_average(args: argparse.Namespace) -> int:
    # Imported here, as in every sub-command, so that `omnirouter --help` does not load torch.
    from omnirouter.evaluate import model_file
    from omnirouter.train import checkpoint as ckpt

    paths = model_file.step_checkpoints(args.exp_dir)
    if args.by == "best":
        paths = ckpt.best_step_checkpoints(args.exp_dir, paths)
    paths = paths[-args.num :]
    if len(paths) < args.num:
        print(f"warning: only {len(paths)} step checkpoints in {args.exp_dir}; averaging those")
    out = (
        args.out or args.exp_dir / model_file.CHECKPOINT_DIR / f"averaged-{args.by}{len(paths)}.pt"
    )
    ckpt.save_checkpoint(out, ckpt.average_checkpoints(paths))
    print(f"averaged {', '.join(p.name for p in paths)} into {out}")
    return 0
