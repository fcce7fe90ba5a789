"""``memorybench status RESULTS``: where every run of a results directory stands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from memorybench.runners.commands.common import UsageError, command_main
from memorybench.runners.selection import TREE_KEYS, add_only_argument

HELP = "where every run of a results directory stands"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memorybench.runners.schema import STATES

    parser.add_argument("results_dir", help="a results root or one suite's directory")
    parser.add_argument("--json", action="store_true", help="one JSON object: counts and a runs list")
    parser.add_argument("--state", action="append", choices=list(STATES), help="only runs in this state (repeatable)")
    add_only_argument(parser, TREE_KEYS, "show")


def run(args: argparse.Namespace) -> int:
    from memorybench.runners.selection import parse_only
    from memorybench.runners.status import collect, status_json, status_table, summary_line

    selection = parse_only(args.only, TREE_KEYS)
    root = Path(args.results_dir)
    if not root.is_dir():
        raise UsageError(f"{root}: no such results directory")
    views = collect(root, selection)
    shown = [view for view in views if not args.state or view.state in args.state]
    if args.json:
        print(json.dumps({**status_json(root, views), "runs": [view.to_dict() for view in shown]}, indent=2))
        return 0
    print(f"{root}: {summary_line(views)}")
    if shown:
        print(status_table(shown))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("status", argv)
