"""``memorybench validate [MEMORY ...]``: the model conformance kit, on built-ins or plugins."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from memorybench.runners.commands.common import command_main

HELP = "run the model conformance checks (all models, or those named)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("memory", nargs="*", help="registered memory names (default: all)")


def run(args: argparse.Namespace) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("validate", argv)
