"""``memorybench run SUITE``: plan a suite into runs, prepare their directories, hand them to a backend.

Everything is checked before anything is written: the suite (names, keys, values, data), the
output directory, the backend and its resources (``resources.<backend>`` with flags on top) and
this machine (``Backend.check``). ``--dry-run`` prints the plan and what the backend would ask
for, and writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memorybench.runners.commands.common import UsageError, check_writable, command_main
from memorybench.runners.selection import RUN_KEYS, add_only_argument

if TYPE_CHECKING:
    from memorybench.runners.backends.base import Backend, Plan
    from memorybench.runners.suite import Suite

HELP = "run a suite (memories × datasets × benchmarks × seeds)"
ACTIONS = ("start", "resume", "retry", "rerun", "skip", "skip_failed", "active")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memorybench.runners.backends import BACKENDS

    parser.add_argument("config", help="suite YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a suite key (dotted)")
    parser.add_argument("--out", default="results", help="results root (default: results)")
    parser.add_argument("--data-root", default=None, help="data root (default: $MEMORYBENCH_DATA or ./data)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved runs and do nothing else")
    parser.add_argument("--verbose", "-v", action="store_true", help="with --dry-run: print each run's resolved config")
    parser.add_argument(
        "--runner", default="inline", help=f"backend: {', '.join(BACKENDS.available())} (default: inline)"
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="run failed runs again (resuming from their checkpoints)"
    )
    parser.add_argument(
        "--rerun-stale", action="store_true", help="re-run finished runs whose model or benchmark code has changed"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_only_argument(parser, RUN_KEYS, "run")
    for name in BACKENDS.available():
        BACKENDS.get(name).add_arguments(parser)


def choose_backend(args: argparse.Namespace, resources: dict[str, Any]) -> Backend:
    """The ``--runner`` backend with its validated resources (the suite's section, flags on top);
    one-line errors for an unknown runner or a flag of another runner."""
    from memorybench.memories.registry import RegistryError, suggest
    from memorybench.runners.backends import BACKENDS

    try:
        backend_class = BACKENDS.get(args.runner)
    except RegistryError as error:
        if args.runner in BACKENDS.plugin_errors or args.runner in BACKENDS.collisions:
            raise UsageError(f"--runner {args.runner}: {error}") from None
        choices = BACKENDS.available()
        raise UsageError(
            f"--runner {args.runner!r}: unknown runner{suggest(args.runner, choices)}; choose from {', '.join(choices)}"
        ) from None
    for name in BACKENDS.available():
        given = BACKENDS.get(name).given_options(args)
        if name != args.runner and given:
            raise UsageError(f"{given[0]} applies only to --runner {name}")
    settings = backend_class.settings(resources.get(args.runner), args)
    backend: Backend = BACKENDS.create(args.runner, settings)
    return backend


def select(suite: Suite, only: Sequence[str]) -> Suite:
    """The suite reduced to the runs ``--only`` selects (one-line error for an unknown key or label)."""
    from memorybench.runners.selection import check_choices, matches, parse_only

    selection = parse_only(only, RUN_KEYS)
    if not selection:
        return suite
    labels = [{"memory": r.memory, "dataset": r.dataset, "benchmark": r.benchmark, "seed": r.seed} for r in suite.runs]
    check_choices(selection, {key: [label[key] for label in labels] for key in RUN_KEYS}, f"suite {suite.name!r}")
    runs = tuple(run for run, label in zip(suite.runs, labels) if matches(selection, label))
    return dataclasses.replace(suite, runs=runs)


def _print_plan(plan: Plan, verbose: bool) -> None:
    for run in plan.runs:
        print(f"  {run.action:<11} {run.spec.run_id}")
        if verbose:
            print("    " + json.dumps(run.spec.identity(), sort_keys=True))
    if any(run.action == "skip_failed" for run in plan.runs):
        print("  (failed runs are retried only with --retry-failed)")


def _prepare(plan: Plan, out: Path) -> None:
    """Create the run directories (leaving no empty directory behind when that fails)."""
    from memorybench.runners.dispatch import prepare
    from memorybench.runners.schema import is_storage_error

    created = [path for path in (plan.suite_dir, out) if not path.exists()]
    try:
        plan.todo = prepare(plan.runs)
    except OSError as error:
        for path in created:
            with contextlib.suppress(OSError):
                path.rmdir()
        if is_storage_error(error):
            raise
        raise UsageError(f"--out {out}: cannot create the run directories ({error.strerror or error})") from None
    for run in plan.runs:
        if run.will_run and run not in plan.todo:
            print(f"  skipped {run.spec.run_id}: another process is running it")


def run(args: argparse.Namespace) -> int:
    from memorybench.runners.suite import load_suite

    return execute_suite(select(load_suite(args.config, args.set, args.data_root), args.only), args)


def execute_suite(suite: Suite, args: argparse.Namespace) -> int:
    """Plan ``suite`` under ``args.out``, print the plan line, and hand the runs to the ``--runner``
    backend (``--dry-run``: print what would run and stop). Returns the backend's exit status."""
    from memorybench.memories.configuration import ConfigError
    from memorybench.runners.backends.base import Plan
    from memorybench.runners.dispatch import plan_runs
    from memorybench.runners.schema import suite_dir as make_suite_dir
    from memorybench.runners.status import settle

    out = Path(args.out)
    check_writable(out)
    backend = choose_backend(args, suite.resources)
    try:
        backend.check()
        problem = ""
    except ConfigError as error:
        if not args.dry_run:
            raise
        problem = str(error)  # a dry run still shows the request
    suite_dir = make_suite_dir(out, suite.name)
    planned = plan_runs(suite.runs, suite_dir, retry_failed=args.retry_failed)
    planned = settle(planned, args.retry_failed, record=not args.dry_run)
    if args.rerun_stale:
        from memorybench.runners.dispatch import mark_stale

        planned = mark_stale(planned)
    counts = {action: sum(run.action == action for run in planned) for action in ACTIONS}
    print(
        f"suite {suite.name!r}: {len(planned)} runs -> {suite_dir} "
        f"(start {counts['start']}, resume {counts['resume']}, retry {counts['retry']}, "
        + (f"rerun {counts['rerun']} stale, " if args.rerun_stale else "")
        + f"skip {counts['skip']} done, {counts['skip_failed']} failed"
        + (f", {counts['active']} already queued or running)" if counts["active"] else ")")
    )
    includes = tuple(str(Path(m).resolve()) if m.endswith(".py") else m for m in args.include)
    plan = Plan(suite.name, suite_dir, planned, includes=includes, note=suite.note)
    if args.dry_run:
        _print_plan(plan, args.verbose)
        for line in backend.describe(plan):
            print(line)
        if problem:
            print(f"  (a real run would stop here: {problem})")
        return 0
    _prepare(plan, out)
    return backend.execute(plan, args)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("run", argv)
