"""``memorybench evaluate RUN_DIR BENCHMARK``: evaluate an already trained model, without training."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from memorybench.runners.commands.common import UsageError, command_main

HELP = "evaluate an already trained model with one benchmark (no training)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a training run (<suite>/_training/<id>) or any run that evaluated it")
    parser.add_argument("benchmark", help="registered benchmark name")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a benchmark setting, e.g. max_episodes=8"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="evaluate the weights after N steps (default: the last)"
    )
    parser.add_argument("--data-root", default=None, help="data root (default: the one it was trained with)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from memorybench.benchmarks.base import BENCHMARKS
    from memorybench.memories.configuration import as_dict
    from memorybench.reports.tables import frame_markdown
    from memorybench.runners.dispatch import classify
    from memorybench.runners.execute import execute_run
    from memorybench.runners.schema import SPEC_FILE, RunBusyError, read_result
    from memorybench.runners.suite import RunSpec, apply_overrides
    from memorybench.runners.summary import summary_table
    from memorybench.runners.training import TRAINING_DIR, evaluation_spec, training_dir

    source = Path(args.run_dir)
    if (source / SPEC_FILE).is_file():  # an evaluation run: evaluate the model it evaluated
        from memorybench.runners.schema import read_json

        spec = RunSpec.from_dict(read_json(source / SPEC_FILE) or {})
        source = training_dir(source.parent, spec)
    if not BENCHMARKS.get(args.benchmark).needs_training:
        raise UsageError(f"benchmark {args.benchmark!r} evaluates no trained model; run it in a suite")
    config = as_dict(BENCHMARKS.config_for(args.benchmark, apply_overrides({}, args.set)))
    try:
        spec = evaluation_spec(source, args.benchmark, config, args.steps)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.data_root:
        spec = dataclasses.replace(spec, data_root=args.data_root)
    suite_dir = source.parent.parent
    if source.parent.name != TRAINING_DIR:
        raise UsageError(f"{args.run_dir}: expected a directory under <suite>/{TRAINING_DIR}/ or a run directory")
    run_dir = suite_dir / spec.run_id
    if classify(spec, run_dir) == "skip":
        print(f"already evaluated: {run_dir}")
    else:
        try:
            result = execute_run(spec, run_dir, progress=None if args.progress else False)
        except RunBusyError as error:
            raise UsageError(str(error)) from None
        print(f"{result['status']} {spec.run_id} ({result.get('wall_time_s', 0.0):.1f} s)")
    print(frame_markdown(summary_table([run_dir])))
    print(f"result: {run_dir / 'result.json'}")
    result = read_result(run_dir) or {}
    return 1 if result.get("status") == "failed" else 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("evaluate", argv)
