"""``memorybench report RESULTS``: tables, figures and an HTML/Markdown report of a results directory."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from memorybench.runners.commands.common import UsageError, check_writable, command_main
from memorybench.runners.selection import TREE_KEYS, add_only_argument

HELP = "tables, figures and an HTML/Markdown report from a results directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="results directory (a results root or one suite's directory)")
    parser.add_argument("--out", default=None, help="output directory (default: RESULTS/report)")
    parser.add_argument(
        "--format", default="md,html,latex,csv", help="comma-separated subset of md,html,latex,csv (default: all)"
    )
    add_only_argument(parser, TREE_KEYS, "report")


def run(args: argparse.Namespace) -> int:
    from memorybench.reports.build import build_report, parse_formats
    from memorybench.reports.load import ResultsError
    from memorybench.runners.selection import parse_only

    selection = parse_only(args.only, TREE_KEYS)

    try:
        formats = parse_formats(args.format)
    except ValueError as error:
        raise UsageError(f"--format: {error}") from None
    results = Path(args.results)
    out = Path(args.out) if args.out else results / "report"
    check_writable(out)
    try:
        outcome = build_report(results, out, formats, selection)
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


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("report", argv)
