"""`omnirouter experiment CONFIG`: the whole comparison, from corpus to report."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from omnirouter.cli.arguments import invoked_command
from omnirouter.errors import InterruptedRunError, Terminated
from omnirouter.experiment.ledger import STAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="build the corpus, train, evaluate and analyse several models, write the report",
        description="Run an experiment config (see configs/experiments/): corpus -> tokenizer "
        "-> train (every model x seed) -> eval -> routing analysis -> compare -> report. A "
        "re-run skips finished work and continues interrupted training.",
    )
    parser.add_argument("config", type=Path, help="experiment YAML (configs/experiments/*.yaml)")
    parser.add_argument(
        "overrides", nargs="*", help="dotted overrides, e.g. seeds=[0,1] run.train.max_steps=500"
    )
    parser.add_argument(
        "--force-stage",
        choices=STAGES,
        help="redo this stage even if it is done, and every stage after it "
        "(train: delete the runs and train them again)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import shlex

    from omnirouter.experiment.config import load_experiment_config
    from omnirouter.experiment.pipeline import run_experiment

    config = load_experiment_config(args.config, args.overrides)
    command = invoked_command()
    try:
        outputs = run_experiment(config, args.force_stage, command)
    except (KeyboardInterrupt, Terminated) as error:
        number = signal.SIGINT if isinstance(error, KeyboardInterrupt) else signal.SIGTERM
        # Without --force-stage, which would redo the work done so far.
        again = shlex.join(["omnirouter", "experiment", str(args.config), *args.overrides])
        raise InterruptedRunError(
            f"stopped by {signal.Signals(number).name}; finished work is kept and a run in "
            f"training saved a checkpoint: continue with: {again}",
            number,
        ) from None
    print(f"report: {outputs.readme}")
    print(f"        {outputs.html}")
    print(f"stage times: {outputs.stages}")
    return 0
