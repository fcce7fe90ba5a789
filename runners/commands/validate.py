"""``memorybench validate [NAME ...] [--set key=value ...]``: the conformance kits, on built-ins or plugins.

A memory name runs the model kit (:mod:`memorybench.memories.conformance`), a benchmark name the
benchmark smoke checks (:mod:`memorybench.benchmarks.conformance`); no name: every memory.
``--set`` gives settings (values parsed as YAML, validated against each named model's or
benchmark's config like a suite's section) on top of the kits' small test settings.
A failing check names the method that broke the protocol or the line of the model that raised;
a plugin whose entry point cannot be loaded is reported as broken (exit status 2 when named).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from memorybench.runners.commands.common import UsageError, command_main

HELP = "run the conformance checks on memories (all, or those named) or named benchmarks"
SET_BY_THE_CHECKS = ("episode_length",)  # the checks choose T themselves (T = 4, then 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("memory", nargs="*", metavar="NAME", help="memory or benchmark names (default: every memory)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model (or benchmark) setting for the checks, e.g. memory_size=8 (YAML value; repeatable)",
    )


def model_settings(overrides: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` → ``{key: value}`` (one-line errors for a bad pair or a dotted key)."""
    from memorybench.runners.suite import apply_overrides

    settings = apply_overrides({}, list(overrides))
    nested = [key for key, value in settings.items() if isinstance(value, dict)]
    if nested:
        raise UsageError(f"--set {nested[0]}.…: model settings are plain keys (e.g. --set memory_size=8)")
    fixed = [key for key in settings if key in SET_BY_THE_CHECKS]
    if fixed:
        raise UsageError(f"--set {fixed[0]}: the checks choose the episode length themselves")
    return settings


def resolve(name: str) -> str:
    """``"memory"`` or ``"benchmark"``: which registry ``name`` is in (one-line error otherwise;
    a broken plugin of either kind is reported as broken, not unknown)."""
    from memorybench import memories
    from memorybench.benchmarks.base import BENCHMARKS
    from memorybench.memories.registry import RegistryError, suggest

    for kind, registry in (("memory", memories.MEMORIES), ("benchmark", BENCHMARKS)):
        if name in registry or name in registry.plugin_errors or name in registry.collisions:
            registry.get(name)  # broken or colliding: raises with what is wrong
            return kind
    choices = [*memories.available(), *BENCHMARKS.available()]
    raise RegistryError(
        f"unknown memory or benchmark {name!r}{suggest(name, choices)}; available: {', '.join(choices)}"
    )


def run(args: argparse.Namespace) -> int:
    from memorybench import memories
    from memorybench.benchmarks import conformance as benchmark_kit
    from memorybench.benchmarks.base import BENCHMARKS
    from memorybench.memories import conformance as memory_kit

    settings = model_settings(args.set)
    names = args.memory or memories.available()
    kinds = {name: resolve(name) for name in names}
    for name, kind in kinds.items():
        registry = memories.MEMORIES if kind == "memory" else BENCHMARKS
        try:
            registry.config_for(name, settings)
        except memories.ConfigError as error:
            raise UsageError(f"--set: {error}") from None
    failures = 0
    broken = {} if args.memory else memories.MEMORIES.plugin_errors
    for name, problem in sorted(broken.items()):
        failures += 1
        print(f"FAIL {name:<12} {'plugin':<22} broken plugin: {problem}")
    for name, kind in kinds.items():
        kit = memory_kit if kind == "memory" else benchmark_kit
        for result in kit.run_checks(name, settings):
            failures += not result.passed
            mark = "ok  " if result.passed else "FAIL"
            print(f"{mark} {name:<12} {result.check:<22} {result.message}".rstrip())
    print(f"{failures} failed" if failures else "all conformance checks passed")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("validate", argv)
