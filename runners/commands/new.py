"""``memorybench new {memory,benchmark} NAME [--out DIR]``: scaffold a plugin package.

Writes ``DIR`` (default ``./memorybench-NAME``, underscores as hyphens)::

    pyproject.toml                    the entry point (group memorybench.memories or .benchmarks)
                                      and the dependency on memorybench
    README.md
    src/memorybench_NAME/__init__.py
    src/memorybench_NAME/NAME.py      a complete, working model or benchmark to edit
    tests/test_NAME.py                the conformance checks under pytest

Installed (``pip install -e DIR``), it passes ``memorybench validate NAME`` unchanged. The files
come from ``runners/templates/`` (:class:`string.Template`, ``${name}`` placeholders). An invalid
or taken name, or an existing ``DIR``, is a one-line error (exit status 2) and nothing is
written; the package is written into a temporary sibling directory and renamed into place.
"""

from __future__ import annotations

import argparse
import keyword
import re
import shutil
import string
import tempfile
from collections.abc import Sequence
from pathlib import Path

from memorybench.runners.commands.common import UsageError, check_writable, command_main

HELP = "scaffold a plugin package: a memory model or a benchmark"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
# kind -> (entry-point group, section of `memorybench list` and of suites, template of the code file)
KINDS = {
    "memory": ("memorybench.memories", "memories", "model.py"),
    "benchmark": ("memorybench.benchmarks", "benchmarks", "benchmark.py"),
}
SUMMARY = {"memory": "An attention read-out memory model", "benchmark": "A read-back likelihood benchmark"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=list(KINDS), help="what the plugin provides")
    parser.add_argument("name", help="its registry name: lower case letters, digits and _ (e.g. my_memory)")
    parser.add_argument("--out", default=None, help="the package directory to create (default: ./memorybench-NAME)")


def check_name(kind: str, name: str) -> None:
    """One-line error unless ``name`` is a valid, unused registry name for ``kind``."""
    from memorybench.memories.registry import static_listing
    from memorybench.runners.commands.list import KINDS as LIST_KINDS

    if not NAME_PATTERN.fullmatch(name) or keyword.iskeyword(name):
        raise UsageError(
            f"new {kind} {name!r}: a name is 1-40 lower case letters, digits and _, starting with a letter"
        )
    registry_kind, group, package = LIST_KINDS[KINDS[kind][1]]
    taken = {item.name: item.origin for item in static_listing(registry_kind, group, package)}
    if name in taken:
        raise UsageError(f"new {kind} {name!r}: that name is taken by {taken[name]}; choose another")


def class_name(name: str) -> str:
    """``my_memory`` -> ``MyMemory``."""
    return "".join(part.capitalize() for part in name.split("_") if part) or "Plugin"


def render(kind: str, name: str) -> dict[str, str]:
    """Relative path -> text of every file of the package."""
    import importlib.metadata

    group, section, code_file = KINDS[kind]
    module = f"memorybench_{name}"
    values = {
        "name": name,
        "kind": kind,
        "group": group,
        "section": section,
        "module": module,
        "class_name": class_name(name),
        "distribution": f"memorybench-{name.replace('_', '-')}",
        "summary": SUMMARY[kind],
        "memorybench_version": importlib.metadata.version("memorybench"),
    }

    def fill(template: str) -> str:
        return string.Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)

    return {
        "pyproject.toml": fill("common/pyproject.toml.tmpl"),
        "README.md": fill("common/README.md.tmpl"),
        f"src/{module}/__init__.py": fill("common/__init__.py.tmpl"),
        f"src/{module}/{name}.py": fill(f"{kind}/{code_file}.tmpl"),
        f"tests/test_{name}.py": fill(f"{kind}/test.py.tmpl"),
    }


def scaffold(kind: str, name: str, out: Path) -> list[Path]:
    """Write the package into ``out`` (which must not exist); returns the files written."""
    check_name(kind, name)
    if out.exists() or out.is_symlink():
        raise UsageError(f"--out {out}: already exists; choose a new directory")
    check_writable(out.parent)
    files = render(kind, name)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700 directories
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / relative for relative in files]


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(f"memorybench-{args.name.replace('_', '-')}")
    written = scaffold(args.kind, args.name, out)
    print(f"wrote the {args.kind} plugin {args.name!r} to {out}/:")
    for path in written:
        print(f"  {path.relative_to(out)}")
    print(f"next: pip install -e {out}  &&  memorybench validate {args.name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("new", argv)
