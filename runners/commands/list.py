"""``memorybench list [KIND]``: the registered memories, datasets, benchmarks and backends.

Nothing registered is imported: the built-ins are read from their source (their
``@register_<kind>("name")`` decorators and class docstrings) and plugins from their entry points,
so listing is fast and a broken plugin cannot break it. Code imported with ``--include`` is
listed too.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memorybench.runners.commands.common import command_main

if TYPE_CHECKING:
    from memorybench.memories.registry import Listing

HELP = "list registered memories, datasets, benchmarks and backends"

# section -> (kind, entry-point group, package of the built-ins): the arguments each registry is
# created with (tests/test_cli.py checks they agree), repeated so that listing imports none of them.
KINDS = {
    "memories": ("memory", "memorybench.memories", "memorybench.memories"),
    "datasets": ("dataset", "memorybench.datasets", "memorybench.benchmarks"),
    "benchmarks": ("benchmark", "memorybench.benchmarks", "memorybench.benchmarks"),
    "backends": ("backend", "memorybench.backends", "memorybench.runners.backends"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", choices=list(KINDS))


def listings(section: str) -> list[Listing]:
    """The lines of one section: built-ins and plugins read statically, plus anything registered
    at run time (``--include``) by a registry that exists already."""
    from memorybench.memories.registry import Registry, static_listing

    kind, group, package = KINDS[section]
    found = {item.name: item for item in static_listing(kind, group, package)}
    registry = Registry.instances.get(group)
    for item in registry.registered() if registry is not None else []:
        found.setdefault(item.name, item)
    return sorted(found.values(), key=lambda item: item.name)


def run(args: argparse.Namespace) -> int:
    for section in [args.kind] if args.kind else list(KINDS):
        items = listings(section)
        print(f"{section}:")
        width = max((len(item.name) for item in items), default=0)
        for item in items:
            print(f"  {item.name:<{width}}  {item.summary}")
            if item.problem:
                print(f"  {'':<{width}}  error: {item.problem}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("list", argv)
