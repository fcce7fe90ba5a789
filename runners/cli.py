"""The ``memorybench`` command line: the front door to one module per subcommand.

``main(argv)`` is a plain function (tests call it); ``python -m memorybench.runners.cli`` works
too. The subcommands live in :mod:`memorybench.runners.commands`; only the chosen one adds its
arguments, and only its handler imports torch, the models or the benchmarks. User errors —
unknown names or keys, bad values, invalid YAML, missing data, an unwritable output directory —
print one line to stderr and return exit status 2 before any work or any file is written.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from memorybench.memories.configuration import ConfigError
from memorybench.memories.registry import RegistryError, import_user_module
from memorybench.runners.commands import COMMANDS
from memorybench.runners.commands.common import UsageError, check_writable

EXIT_USAGE = 2


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"memorybench.runners.commands.{name}")


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (skipping ``--include VALUE``), or None."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--include":
            next(tokens, None)
        elif not token.startswith("-"):
            return token if token in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s arguments are added (all of them when it is ``"*"``)."""
    parser = argparse.ArgumentParser(prog="memorybench", description="Benchmark suite for generative memory models.")
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import a plugin module or .py file before running (registers its models)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = command_module(name)
        sub_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        if command in (name, "*"):
            module.add_arguments(sub_parser)
        sub_parser.set_defaults(handler=module.run)
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


def _is_user_error(error: BaseException) -> bool:
    """A mistake in the input: printed on one line, exit status 2. Missing data is one; its class
    is only looked up when the datasets module is loaded (otherwise it cannot have been raised)."""
    if isinstance(error, ConfigError | RegistryError | UsageError):
        return True
    datasets = sys.modules.get("memorybench.benchmarks.common.datasets.base")
    return datasets is not None and isinstance(error, datasets.DataMissingError)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(chosen_command(argv)).parse_args(argv)
    try:
        for module in args.include:
            include(module)
        return int(args.handler(args))
    except BrokenPipeError:  # e.g. `memorybench status ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ConfigError, RegistryError, UsageError, OSError) as error:
        if _is_user_error(error):
            print(f"memorybench: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        assert isinstance(error, OSError)
        from memorybench.runners.schema import is_storage_error

        # a full disk, a quota, a read-only filesystem: the machine, not the input
        where = f" ({error.filename})" if error.filename else ""
        advice = "; finished runs are saved, a rerun resumes the rest" if is_storage_error(error) else ""
        print(f"memorybench: error: {error.strerror or error}{where}{advice}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("memorybench: interrupted; completed runs are saved, re-run to resume", file=sys.stderr)
        return 130


__all__ = ["EXIT_USAGE", "UsageError", "build_parser", "check_writable", "main"]


if __name__ == "__main__":
    sys.exit(main())
