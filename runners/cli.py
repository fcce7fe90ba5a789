"""The ``memorybench`` command line: list, run, status, report, validate.

``main(argv)`` is a plain function (tests call it). User errors — unknown names or keys, bad
values, invalid YAML, missing data, an unwritable output directory — print one line to stderr
and return exit status 2 before any work or any file is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.datasets import DataMissingError
from memories.configuration import ConfigError
from memories.registry import RegistryError, import_user_module

EXIT_USAGE = 2


class UsageError(Exception):
    """A user-facing error; the CLI prints it on one line and exits with status 2."""


# Each subcommand module contributes (add_parser, handler); later issues add their own here.
Handler = Callable[[argparse.Namespace], int]
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def subcommand(add: Callable[[argparse._SubParsersAction], None]) -> Callable[[argparse._SubParsersAction], None]:
    SUBCOMMANDS.append(add)
    return add


# ---------------------------------------------------------------------------- list
REGISTRIES = ("memories", "datasets", "benchmarks")


def _registry(kind: str):  # type: ignore[no-untyped-def]
    if kind == "memories":
        from memories import MEMORIES

        return MEMORIES
    if kind == "datasets":
        from benchmarks.datasets import DATASETS

        return DATASETS
    from benchmarks.base import BENCHMARKS

    return BENCHMARKS


def cmd_list(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        registry = _registry(kind)
        names = registry.available()
        print(f"{kind}:")
        width = max((len(n) for n in names), default=0)
        for name in names:
            print(f"  {name:<{width}}  {registry.describe(name)}")
        for name, error in registry.plugin_errors.items():
            print(f"  {name:<{width}}  (broken plugin, skipped: {error})")
    return 0


@subcommand
def _add_list(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("list", help="list registered memories, datasets and benchmarks")
    parser.add_argument("kind", nargs="?", choices=REGISTRIES)
    parser.set_defaults(handler=cmd_list)


# ---------------------------------------------------------------------------- run
def check_writable(directory: Path) -> None:
    """Refuse an output directory that cannot be created or written (nothing is created here)."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {directory}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {directory}: {probe} is not writable")


def cmd_run(args: argparse.Namespace) -> int:
    from runners.dispatch import plan_runs, prepare, run_inline
    from runners.results import suite_dir as make_suite_dir
    from runners.suite import load_suite
    from runners.summary import markdown, write_summary

    suite = load_suite(args.config, args.set, args.data_root)
    out = Path(args.out)
    check_writable(out)
    suite_dir = make_suite_dir(out, suite.name)
    planned = plan_runs(suite.runs, suite_dir, retry_failed=args.retry_failed)
    counts = {action: sum(run.action == action for run in planned) for action in ("start", "resume", "retry", "skip", "skip_failed")}
    print(
        f"suite {suite.name!r}: {len(planned)} runs -> {suite_dir} "
        f"(start {counts['start']}, resume {counts['resume']}, retry {counts['retry']}, "
        f"skip {counts['skip']} done, {counts['skip_failed']} failed)"
    )
    if args.dry_run:
        import json

        for run in planned:
            print(f"  {run.action:<11} {run.spec.run_id}")
            if args.verbose:
                print("    " + json.dumps(run.spec.identity(), sort_keys=True))
        if counts["skip_failed"]:
            print("  (failed runs are retried only with --retry-failed)")
        return 0
    todo = prepare(planned)
    backend = args.runner
    if backend == "inline":
        run_inline(todo, progress=None if args.progress else False)
    else:
        raise UsageError(f"--runner {backend!r} is not available in this build; use inline")
    table = write_summary(suite_dir, [run.run_dir for run in planned])
    print()
    print(markdown(table) if not table.empty else "(no results)")
    print(f"results: {suite_dir}/summary.csv, {suite_dir}/summary.md and one directory per run")
    failed = int((table["status"] == "failed").sum()) if "status" in table else 0
    return 1 if failed else 0


@subcommand
def _add_run(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run a suite (memories × datasets × benchmarks × seeds)")
    parser.add_argument("config", help="suite YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a suite key (dotted)")
    parser.add_argument("--out", default="results", help="results root (default: results)")
    parser.add_argument("--data-root", default=None, help="data root (default: $MEMORYBENCH_DATA or ./data)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved runs and do nothing else")
    parser.add_argument("--verbose", "-v", action="store_true", help="with --dry-run: print each run's resolved config")
    parser.add_argument("--runner", default="inline", help="backend: inline (default), local, slurm")
    parser.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.set_defaults(handler=cmd_run)


# ---------------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    import memories
    from memories.conformance import run_checks

    names = args.memory or memories.available()
    for name in names:
        memories.MEMORIES.get(name)  # unknown names: one-line error
    failures = 0
    for name in names:
        for result in run_checks(name):
            failures += not result.passed
            mark = "ok  " if result.passed else "FAIL"
            print(f"{mark} {name:<12} {result.check:<22} {result.message}".rstrip())
    print(f"{failures} failed" if failures else "all conformance checks passed")
    return 1 if failures else 0


@subcommand
def _add_validate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("validate", help="run the model conformance checks (all models, or those named)")
    parser.add_argument("memory", nargs="*", help="registered memory names (default: all)")
    parser.set_defaults(handler=cmd_validate)


# ---------------------------------------------------------------------------- report
def cmd_report(args: argparse.Namespace) -> int:
    from reports.build import build_report, parse_formats
    from reports.load import ResultsError

    try:
        formats = parse_formats(args.format)
    except ValueError as error:
        raise UsageError(f"--format: {error}") from None
    results = Path(args.results)
    out = Path(args.out) if args.out else results / "report"
    check_writable(out)
    try:
        outcome = build_report(results, out, formats)
    except ResultsError as error:
        raise UsageError(str(error)) from None
    states = ", ".join(f"{n} {state}" for state, n in sorted(outcome.states.items()))
    print(f"report of {outcome.runs} runs ({states}): {len(outcome.tables)} tables, {len(outcome.figures)} figures")
    for name in ("report.html", "report.md", "results.csv"):
        if (out / name).is_file():
            print(f"  {out / name}")
    print(f"  {out / 'tables'}/  {out / 'figures'}/")
    for skipped in outcome.skipped:
        print(f"  figure skipped: {skipped}")
    return 0


@subcommand
def _add_report(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="tables, figures and an HTML/Markdown report from a results directory")
    parser.add_argument("results", help="results directory (a results root or one suite's directory)")
    parser.add_argument("--out", default=None, help="output directory (default: RESULTS/report)")
    parser.add_argument(
        "--format", default="md,html,latex,csv", help="comma-separated subset of md,html,latex,csv (default: all)"
    )
    parser.set_defaults(handler=cmd_report)


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memorybench", description="Benchmark suite for generative memory models.")
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import a plugin module or .py file before running (registers its models)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for module in args.include:
            try:
                import_user_module(module)
            except (ImportError, FileNotFoundError) as error:
                raise UsageError(f"--include {module}: {error}") from None
        return int(args.handler(args))
    except (ConfigError, RegistryError, DataMissingError, UsageError) as error:
        print(f"memorybench: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("memorybench: interrupted; completed runs are saved, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
