"""The ``memorybench`` command line: list, run, evaluate, status, report, validate.

``main(argv)`` is a plain function (tests call it). User errors — unknown names or keys, bad
values, invalid YAML, missing data, an unwritable output directory — print one line to stderr
and return exit status 2 before any work or any file is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memorybench.benchmarks.datasets import DataMissingError
from memorybench.memories.configuration import ConfigError
from memorybench.memories.registry import Registry, RegistryError, import_user_module
from memorybench.runners.results import STATES, is_storage_error

if TYPE_CHECKING:
    from memorybench.runners.dispatch import PlannedRun

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


def _registry(kind: str) -> Registry[Any]:
    from memorybench.benchmarks.base import BENCHMARKS
    from memorybench.benchmarks.datasets import DATASETS
    from memorybench.memories import MEMORIES

    registries: dict[str, Registry[Any]] = {"memories": MEMORIES, "datasets": DATASETS, "benchmarks": BENCHMARKS}
    return registries[kind]


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
    """Refuse an output directory that cannot be created or written; nothing is left behind.

    Permission bits are not enough (root passes them; /proc, read-only mounts and full disks do
    not show in them): a temporary directory is really created in the nearest existing ancestor
    and removed again."""
    import tempfile

    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {directory}: {probe} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".memorybench-probe-", dir=probe))
    except OSError as error:
        raise UsageError(
            f"--out {directory}: cannot create a directory in {probe} ({error.strerror or error})"
        ) from None


RUNNERS = ("inline", "local", "slurm")
LOCAL_FLAGS = {"workers": "--workers", "gpus": "--gpus"}
SLURM_FLAGS = {
    "partition": "--partition",
    "time_min": "--time",
    "mem_gb": "--mem",
    "cpus_per_task": "--cpus-per-task",
    "gpus_per_job": "--gpus-per-job",
    "array_parallelism": "--array-parallelism",
    "max_requeues": "--max-requeues",
}


def resolve_backend(args: argparse.Namespace, resources: dict[str, Any]) -> Any:
    """Validate ``--runner`` and its resources (suite ``resources:`` + flags) before anything is written.

    Returns the backend's validated resources (None for inline); raises one-line errors for an
    unknown runner, a flag of another runner, bad values, GPUs this machine lacks, or no sbatch.
    """
    from memorybench.memories.registry import suggest
    from memorybench.runners.checks import RESOURCE_SECTIONS

    if args.runner not in RUNNERS:
        raise UsageError(
            f"--runner {args.runner!r}: unknown runner{suggest(args.runner, list(RUNNERS))}; choose from {', '.join(RUNNERS)}"
        )
    unknown = [key for key in resources if key not in RESOURCE_SECTIONS]
    if unknown:
        raise ConfigError(
            f"resources: unknown key {unknown[0]!r}{suggest(str(unknown[0]), list(RESOURCE_SECTIONS))}; valid keys: {', '.join(RESOURCE_SECTIONS)}"
        )
    local_given = [flag for key, flag in LOCAL_FLAGS.items() if getattr(args, key) is not None]
    slurm_given = [flag for key, flag in SLURM_FLAGS.items() if getattr(args, key) is not None]
    slurm_given += ["--sbatch"] * bool(args.sbatch) + ["--wait"] * args.wait
    if args.runner != "local" and local_given:
        raise UsageError(f"{local_given[0]} applies only to --runner local")
    if args.runner != "slurm" and slurm_given:
        raise UsageError(f"{slurm_given[0]} applies only to --runner slurm")
    if args.runner == "local":
        from memorybench.runners.local import check_local, local_resources

        local = local_resources(resources.get("local"), args.workers, args.gpus)
        check_local(local)
        return local
    if args.runner == "slurm":
        from memorybench.runners.slurm import check_slurm, slurm_resources

        slurm = slurm_resources(resources.get("slurm"), {key: getattr(args, key) for key in SLURM_FLAGS}, args.sbatch)
        check_slurm(slurm)
        return slurm
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from memorybench.runners.dispatch import plan_runs, prepare, run_inline
    from memorybench.runners.results import suite_dir as make_suite_dir
    from memorybench.runners.status import settle
    from memorybench.runners.suite import load_suite

    suite = load_suite(args.config, args.set, args.data_root)
    out = Path(args.out)
    check_writable(out)
    resources = resolve_backend(args, suite.resources)
    suite_dir = make_suite_dir(out, suite.name)
    planned = plan_runs(suite.runs, suite_dir, retry_failed=args.retry_failed)
    planned = settle(planned, args.retry_failed, record=not args.dry_run)
    counts = {
        action: sum(run.action == action for run in planned)
        for action in ("start", "resume", "retry", "skip", "skip_failed", "active")
    }
    print(
        f"suite {suite.name!r}: {len(planned)} runs -> {suite_dir} "
        f"(start {counts['start']}, resume {counts['resume']}, retry {counts['retry']}, "
        f"skip {counts['skip']} done, {counts['skip_failed']} failed"
        + (f", {counts['active']} already queued or running)" if counts["active"] else ")")
    )
    includes = [str(Path(m).resolve()) if m.endswith(".py") else m for m in args.include]
    if args.dry_run:
        import json

        for run in planned:
            print(f"  {run.action:<11} {run.spec.run_id}")
            if args.verbose:
                print("    " + json.dumps(run.spec.identity(), sort_keys=True))
        if counts["skip_failed"]:
            print("  (failed runs are retried only with --retry-failed)")
        if args.runner == "slurm":
            from memorybench.runners.slurm import cluster_max_array_size, describe

            print(describe(resources, sum(run.will_run for run in planned), cluster_max_array_size()))
        return 0
    created = [path for path in (suite_dir, out) if not path.exists()]
    try:
        todo = prepare(planned)
    except OSError as error:
        for path in created:  # leave no empty directory behind
            with contextlib.suppress(OSError):
                path.rmdir()
        if is_storage_error(error):
            raise
        raise UsageError(f"--out {out}: cannot create the run directories ({error.strerror or error})") from None
    for run in planned:
        if run.will_run and run not in todo:
            print(f"  skipped {run.spec.run_id}: another process is running it")
    if args.runner == "slurm":
        return _run_slurm(args, planned, todo, resources, suite_dir, suite.name, includes, suite.note)
    if args.runner == "local":
        from memorybench.runners.local import run_local

        run_local(todo, resources, includes)
    else:
        run_inline(todo, progress=None if args.progress else False)
    return _finish_run(suite_dir, planned, suite.note)


def _finish_run(suite_dir: Path, planned: list[PlannedRun], note: str = "") -> int:
    """Summary table from the run directories (and the suite's note); exit status 1 when any run failed."""
    from memorybench.runners.summary import markdown, write_summary

    table = write_summary(suite_dir, [run.run_dir for run in planned], note)
    print()
    print(markdown(table) if not table.empty else "(no results)")
    if note:
        print(f"note: {note}")
    print(f"results: {suite_dir}/summary.csv, {suite_dir}/summary.md and one directory per run")
    unfinished = int(table["status"].isin(["failed", "interrupted", "damaged"]).sum()) if "status" in table else 0
    return 1 if unfinished else 0


def _run_slurm(
    args: argparse.Namespace,
    planned: list[PlannedRun],
    todo: list[PlannedRun],
    resources: Any,
    suite_dir: Path,
    name: str,
    includes: list[str],
    note: str = "",
) -> int:
    from memorybench.runners.slurm import SubmissionError, submit, wait

    if todo:
        try:
            submission = submit(todo, resources, suite_dir, name, includes)
        except SubmissionError as error:
            print(f"memorybench: error: {error}", file=sys.stderr)
            return 1
        print(f"slurm logs: {submission.log_dir}")
    else:
        print("nothing to submit")
    in_flight = [run for run in planned if run.will_run or run.action == "active"]
    if not args.wait:
        if in_flight:
            print(f"follow with: memorybench status {suite_dir}   (or re-run with --wait)")
            return 0
        return _finish_run(suite_dir, planned, note)
    try:
        wait([run.run_dir for run in in_flight], poll_s=args.poll)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the jobs keep running: memorybench status {suite_dir}", file=sys.stderr)
        return 130
    return _finish_run(suite_dir, planned, note)


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
    parser.add_argument(
        "--retry-failed", action="store_true", help="run failed runs again (resuming from their checkpoints)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    local = parser.add_argument_group("--runner local (default: resources.local in the suite)")
    local.add_argument("--workers", metavar="N", help="worker processes (default: one per --gpus device, else 1)")
    local.add_argument("--gpus", metavar="LIST", help="CUDA devices, e.g. 0,1: one job per GPU at a time")
    slurm = parser.add_argument_group("--runner slurm (default: resources.slurm in the suite)")
    slurm.add_argument("--partition", metavar="P", help="SLURM partition")
    slurm.add_argument(
        "--time", dest="time_min", metavar="T", help="time limit per job: minutes, H:MM:SS or D-HH:MM:SS"
    )
    slurm.add_argument("--mem", dest="mem_gb", metavar="SIZE", help="memory per job, e.g. 16G or 500M")
    slurm.add_argument("--cpus-per-task", metavar="N", help="CPUs per job")
    slurm.add_argument("--gpus-per-job", metavar="N", help="GPUs per job")
    slurm.add_argument("--array-parallelism", metavar="N", help="most jobs of the suite running at once (default 256)")
    slurm.add_argument("--max-requeues", metavar="N", help="requeues of a preempted or timed-out job (default 3)")
    slurm.add_argument(
        "--sbatch", action="append", default=[], metavar="KEY=VALUE", help="any other sbatch option, e.g. account=proj"
    )
    slurm.add_argument("--wait", action="store_true", help="block until every run has finished, with a live summary")
    slurm.add_argument("--poll", type=float, default=15.0, metavar="SECONDS", help=argparse.SUPPRESS)
    parser.set_defaults(handler=cmd_run)


# ---------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from memorybench.benchmarks.base import BENCHMARKS
    from memorybench.memories.configuration import as_dict, from_mapping
    from memorybench.runners.dispatch import classify
    from memorybench.runners.execute import execute_run
    from memorybench.runners.results import SPEC_FILE, RunBusyError, read_result
    from memorybench.runners.suite import RunSpec, apply_overrides
    from memorybench.runners.summary import markdown, summary_table
    from memorybench.runners.training import TRAINING_DIR, evaluation_spec, training_dir

    source = Path(args.run_dir)
    if (source / SPEC_FILE).is_file():  # an evaluation run: evaluate the model it evaluated
        from memorybench.benchmarks.artifacts import read_json

        spec = RunSpec.from_dict(read_json(source / SPEC_FILE) or {})
        source = training_dir(source.parent, spec)
    benchmark_class = BENCHMARKS.get(args.benchmark)
    if not benchmark_class.needs_training:
        raise UsageError(f"benchmark {args.benchmark!r} evaluates no trained model; run it in a suite")
    config = as_dict(
        from_mapping(benchmark_class.config_class, apply_overrides({}, args.set), f"benchmarks.{args.benchmark}")
    )
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
    print(markdown(summary_table([run_dir])))
    print(f"result: {run_dir / 'result.json'}")
    result = read_result(run_dir) or {}
    return 1 if result.get("status") == "failed" else 0


@subcommand
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="evaluate an already trained model with one benchmark (no training)")
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
    parser.set_defaults(handler=cmd_evaluate)


# ---------------------------------------------------------------------------- status
def cmd_status(args: argparse.Namespace) -> int:
    import json

    from memorybench.runners.status import collect, status_json, status_table, summary_line

    root = Path(args.results_dir)
    if not root.is_dir():
        raise UsageError(f"{root}: no such results directory")
    views = collect(root)
    shown = [view for view in views if not args.state or view.state in args.state]
    if args.json:
        print(json.dumps({**status_json(root, views), "runs": [view.to_dict() for view in shown]}, indent=2))
        return 0
    print(f"{root}: {summary_line(views)}")
    if shown:
        print(status_table(shown))
    return 0


@subcommand
def _add_status(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("status", help="where every run of a results directory stands")
    parser.add_argument("results_dir", help="a results root or one suite's directory")
    parser.add_argument("--json", action="store_true", help="one JSON object: counts and a runs list")
    parser.add_argument(
        "--state",
        action="append",
        choices=list(STATES),
        help="only runs in this state (repeatable)",
    )
    parser.set_defaults(handler=cmd_status)


# ---------------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    from memorybench import memories
    from memorybench.memories.conformance import run_checks

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
    from memorybench.reports.build import build_report, parse_formats
    from memorybench.reports.load import ResultsError

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
    for note in outcome.skipped:
        if note not in outcome.failed:
            print(f"  not drawn: {note}")
    for failure in outcome.failed:
        print(f"memorybench: error: report: {failure} (traceback in {out / 'report.log'})", file=sys.stderr)
    return 1 if outcome.failed else 0


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


def include(module: str) -> None:
    """Import one ``--include`` plugin; any failure (a syntax error, an exception at import time) is one line."""
    try:
        import_user_module(module)
    except (ImportError, FileNotFoundError) as error:
        raise UsageError(f"--include {module}: {str(error).removeprefix('--include: ')}") from None
    except SyntaxError as error:
        raise UsageError(
            f"--include {module}: syntax error in {error.filename} line {error.lineno}: {error.msg}"
        ) from None
    except (Exception, SystemExit) as error:
        import traceback

        frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.endswith("registry.py")]
        where = f" ({frames[-1].filename} line {frames[-1].lineno})" if frames else ""
        text = str(error).splitlines()[0] if str(error) else ""
        raise UsageError(f"--include {module}: importing it raised {type(error).__name__}: {text}{where}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for module in args.include:
            include(module)
        return int(args.handler(args))
    except (ConfigError, RegistryError, DataMissingError, UsageError) as error:
        print(f"memorybench: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # a full disk, a quota, a read-only filesystem: the machine, not the input
        where = f" ({error.filename})" if error.filename else ""
        advice = "; finished runs are saved, a rerun resumes the rest" if is_storage_error(error) else ""
        print(f"memorybench: error: {error.strerror or error}{where}{advice}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `memorybench status ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("memorybench: interrupted; completed runs are saved, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
