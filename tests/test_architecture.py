"""The architecture as tests: imports flow one way, modules stay small, workers import nothing heavy needlessly.

Data flows memories ← benchmarks ← runners: a model knows nothing of benchmarks, a benchmark
nothing of runners. Reports read result files only: the one module of the runners they may
import is the result schema. Runners are the top layer: they may present results with the
reports' tables (the end-of-run summary, ``memorybench report``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("memories", "benchmarks", "runners", "reports")
LAYER = {"memories": 0, "benchmarks": 1, "runners": 2}
LINE_LIMIT = 400
# Modules allowed past LINE_LIMIT, each with its reason.
LONG_MODULES: dict[str, str] = {
    "runners/schema.py": "the result schema's one home: run files, run states, the record's writer and reader, "
    "and the only reader of schemas 0 and 1 (runners write through it, reports read through it)",
}


def imported_packages(path: Path) -> set[tuple[str, str]]:
    """(package, full module) for every import of a memorybench package in ``path``, lazy ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "memorybench":
                names = [f"memorybench.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "memorybench" and len(parts) > 1 and parts[1] in PACKAGES:
                found.add((parts[1], name))
    return found


def modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


def arrow_allowed(source: Path, target_package: str, target_module: str) -> bool:
    package = source.relative_to(REPO).parts[0]
    if package == target_package:
        return True
    if package == "reports":
        return target_module == "memorybench.runners.schema"
    if target_package == "reports":
        return package == "runners"
    return package in LAYER and LAYER[target_package] < LAYER[package]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_follow_the_data_flow(path: Path) -> None:
    wrong = sorted(module for package, module in imported_packages(path) if not arrow_allowed(path, package, module))
    assert not wrong, f"{path.relative_to(REPO)} imports against the intended direction: {wrong}"


def test_no_module_grows_past_the_limit_without_a_reason() -> None:
    long = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for path in modules()
        if len(path.read_text().splitlines()) > LINE_LIMIT
    }
    unexplained = {name: lines for name, lines in long.items() if name not in LONG_MODULES}
    assert not unexplained, f"modules over {LINE_LIMIT} lines: {unexplained} (split them, or give the reason here)"
