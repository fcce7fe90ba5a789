"""``memorybench new memory|benchmark NAME``: a plugin package that passes ``validate`` unchanged.

The fast tests use the generated modules through ``--include``; the slow one installs the
packages into this environment (``pip install --no-deps -e``), validates and runs them through
their entry points in a fresh process, and uninstalls them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from memorybench.runners.cli import main

FILES = (
    "pyproject.toml",
    "README.md",
    "src/memorybench_{n}/__init__.py",
    "src/memorybench_{n}/{n}.py",
    "tests/test_{n}.py",
)


def scaffold(tmp_path: Path, kind: str, name: str) -> Path:
    out = tmp_path / f"plugin-{name}"
    assert main(["new", kind, name, "--out", str(out)]) == 0
    return out


def tiny_suite(tmp_path: Path, memory: str, benchmark: str) -> Path:
    suite = {
        "name": "plugins",
        "defaults": {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16},
        "memories": {memory: {}},
        "datasets": {"digits": {}},
        "benchmarks": {benchmark: {"max_episodes": 2}},
        "train": {"steps": 2, "batch_episodes": 2},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.mark.parametrize("kind", ["memory", "benchmark"])
def test_new_writes_a_package_with_the_entry_point_and_the_dependency(tmp_path: Path, kind: str) -> None:
    out = scaffold(tmp_path, kind, "fresh_plugin")
    for file in FILES:
        assert (out / file.format(n="fresh_plugin")).is_file(), file
    pyproject = (out / "pyproject.toml").read_text()
    group = "memories" if kind == "memory" else "benchmarks"
    assert f'[project.entry-points."memorybench.{group}"]' in pyproject
    assert 'fresh_plugin = "memorybench_fresh_plugin.fresh_plugin:FreshPlugin"' in pyproject
    assert 'dependencies = ["memorybench>=' in pyproject
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directory left


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["memory", "My-Model"], "a name is 1-40 lower case letters"),
        (["memory", "class"], "a name is 1-40 lower case letters"),
        (["memory", "gpm"], "that name is taken by memorybench.memories.gpm.GPM"),
        (["benchmark", "elbo"], "that name is taken"),
        (["memory", "fine_name", "--out", "{existing}"], "already exists"),
    ],
)
def test_new_refuses_bad_names_and_existing_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    argv = [a.format(existing=existing) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "new")]
    before = sorted(tmp_path.rglob("*"))
    assert main(["new", *argv]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_included_scaffolds_validate_and_run_in_a_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    memory = (
        scaffold(tmp_path, "memory", "scaffolded_memory") / "src/memorybench_scaffolded_memory/scaffolded_memory.py"
    )
    bench = scaffold(tmp_path, "benchmark", "scaffolded_bench") / "src/memorybench_scaffolded_bench/scaffolded_bench.py"
    includes = ["--include", str(memory), "--include", str(bench)]
    assert main([*includes, "validate", "scaffolded_bench"]) == 0
    assert "all conformance checks passed" in capsys.readouterr().out
    suite = tiny_suite(tmp_path, "scaffolded_memory", "scaffolded_bench")
    assert main([*includes, "run", str(suite), "--out", str(tmp_path / "results"), "--no-progress"]) == 0
    (result_path,) = (tmp_path / "results" / "plugins").glob("*/result.json")
    result = json.loads(result_path.read_text())
    assert result["status"] == "done" and "readback_nll" in result["metrics"]
    provenance = result["provenance"]["memory"]
    assert provenance["package"] is None and provenance["file"] == str(memory.resolve())


@pytest.mark.slow
def test_installed_scaffolds_pass_validate_unchanged(tmp_path: Path) -> None:
    """pip-installs the two generated packages into this environment, then uninstalls them."""
    packages = [scaffold(tmp_path, "memory", "installed_memory"), scaffold(tmp_path, "benchmark", "installed_bench")]
    pip = [sys.executable, "-m", "pip", "-q"]
    cli = [sys.executable, "-m", "memorybench.runners.cli"]
    install = [*pip, "install", "--no-deps", "--no-build-isolation"]
    try:
        subprocess.run([*install, *(arg for p in packages for arg in ("-e", str(p)))], check=True)
        listed = subprocess.run([*cli, "list"], capture_output=True, text=True, check=True).stdout
        assert "installed_memory" in listed and "installed_bench" in listed
        validated = subprocess.run(
            [*cli, "validate", "installed_memory", "installed_bench"], capture_output=True, text=True
        )
        assert validated.returncode == 0, validated.stdout + validated.stderr
        suite = tiny_suite(tmp_path, "installed_memory", "installed_bench")
        subprocess.run([*cli, "run", str(suite), "--out", str(tmp_path / "results"), "--no-progress"], check=True)
        (result_path,) = (tmp_path / "results" / "plugins").glob("*/result.json")
        provenance = json.loads(result_path.read_text())["provenance"]
        assert provenance["memory"]["package"] == "memorybench-installed-memory"
        assert provenance["benchmark"]["package"] == "memorybench-installed-bench"
        assert provenance["memory"]["version"] == "0.1.0"
    finally:
        subprocess.run([*pip, "uninstall", "-y", "memorybench-installed-memory", "memorybench-installed-bench"])
