"""`omnirouter export EXP --out DIR`: a trained model as safetensors weights and a JSON config."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a trained model as model.safetensors, config.json and tokenizer/",
        description="The form weights are shared in: DIR/model.safetensors (the weights), "
        "DIR/config.json (model and data configs, tokenizer, step) and DIR/tokenizer/ (the "
        "sentencepiece model). `omnirouter eval DIR` and `omnirouter transcribe DIR` read it.",
    )
    parser.add_argument(
        "model",
        metavar="EXP",
        help="experiment dir (its best checkpoint, else its last) or checkpoint",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a model exported to DIR before"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from omnirouter.evaluate.model_file import export_inference_model

    out_dir = export_inference_model(args.model, args.out, overwrite=args.overwrite)
    print(f"written: {out_dir}")
    return 0
