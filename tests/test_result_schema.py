"""The result schema (runners/schema.py) and the import graph around it.

The schema module is the one place that names the run files, decides a run's state and reads and
writes the result record; reports read results through it and load nothing that builds models
(the direction of every import is checked in ``test_architecture.py``; here: what actually loads).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from memorybench.reports.benchmark_figures import line_charts
from memorybench.reports.load import load_results
from memorybench.runners.schema import (
    RESULT_FILE,
    SCHEMA_VERSION,
    STATUS_FILE,
    convert_result,
    legacy_tags,
    measured_fields,
    read_result,
    run_lock,
    run_state,
    write_result,
    write_status,
)
from memorybench.runners.status import collect

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "memorybench.memories", "memorybench.benchmarks")


# ---------------------------------------------------------------------------- the import graph
def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module if node.level == 0 else f"memorybench.{path.parent.name}.{node.module}")
            names.update(f"{node.module}.{alias.name}" for alias in node.names if node.level == 0)
    return names


def test_reports_and_the_schema_import_no_models_no_benchmarks_no_torch() -> None:
    for path in [*sorted((REPO / "reports").glob("*.py")), REPO / "runners" / "schema.py"]:
        heavy = [n for n in imported_modules(path) if n == "torch" or n.startswith(HEAVY)]
        assert not heavy, f"{path.name} imports {heavy}"
    code = (
        "import importlib, pkgutil, sys\n"
        "import memorybench.reports as reports\n"
        "for module in pkgutil.iter_modules(reports.__path__):\n"
        "    importlib.import_module('memorybench.reports.' + module.name)\n"
        "loaded = [n for n in sys.modules if n == 'torch' or n.startswith(('memorybench.memories', "
        "'memorybench.benchmarks')) or (n.startswith('memorybench.runners.') and n != 'memorybench.runners.schema')]\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- the record
def test_a_result_round_trips_with_stderr_and_tags_as_data(tmp_path: Path) -> None:
    measured = measured_fields(
        [
            {"name": "nelbo_cond", "value": 31.5, "unit": "nats/image", "stderr": 0.25},
            {
                "name": "success_rate",
                "value": 0.4,
                "unit": "fraction",
                "higher_is_better": True,
                "tags": {"T": 16, "noise": "salt_pepper", "level": 0.1},
            },
        ],
        [{"name": "reconstructions", "kind": "image", "file": "reconstructions.png"}],
    )
    write_result(tmp_path, {"status": "done", "memory": "gpm", "benchmark": "elbo", **measured})
    on_disk = json.loads((tmp_path / RESULT_FILE).read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION == 2
    assert on_disk["metrics"] == {"nelbo_cond": 31.5}  # the flat view holds the untagged measurements
    assert on_disk["measurements"][1]["tags"] == {"T": 16, "noise": "salt_pepper", "level": 0.1}
    assert on_disk["measurements"][0]["stderr"] == 0.25 and on_disk["figures"][0]["kind"] == "image"
    assert read_result(tmp_path) == on_disk and run_state(tmp_path).converted == ""


def test_schema_one_names_become_tags_and_stderr_suffixes_become_stderr() -> None:
    legacy = {
        "schema_version": 1,
        "status": "done",
        "metrics": {"nelbo_cond": 30.0, "nelbo_cond_stderr": 0.5, "success_rate/T16/salt_pepper/0.1": 0.2,
                    "term/kl_w": 3.0, "write_ms/T4/K16/steps5": 1.5, "hamming_stderr": 2.0},
        "units": {"nelbo_cond": "nats/image", "success_rate/T16/salt_pepper/0.1": "fraction"},
        "higher_is_better": {"success_rate/T16/salt_pepper/0.1": True},
        "files": ["elbo_episodes.csv", "denoising_block.png"],
    }  # fmt: skip
    result, note = convert_result(legacy)
    assert note == "converted from schema 1" and result["schema_version"] == 1
    found = {(m["name"], json.dumps(m["tags"], sort_keys=True)): m for m in result["measurements"]}
    assert found[("nelbo_cond", "{}")]["stderr"] == 0.5 and found[("nelbo_cond", "{}")]["unit"] == "nats/image"
    rate = found[("success_rate", json.dumps({"T": 16, "level": 0.1, "noise": "salt_pepper"}, sort_keys=True))]
    assert rate["value"] == 0.2 and rate["higher_is_better"] and rate["unit"] == "fraction"
    assert ("nelbo_term", '{"term": "kl_w"}') in found
    assert ("hamming_stderr", "{}") in found  # a _stderr name without its metric is a metric of its own
    assert legacy_tags("write_ms/T4/K16/steps5") == ("write_ms", {"T": 4, "K": 16, "steps": 5})
    assert legacy_tags("copy_rate/step0") == ("copy_rate", {"step": 0})
    assert result["metrics"] == {"nelbo_cond": 30.0, "hamming_stderr": 2.0}
    assert result["figures"] == [
        {"name": "denoising_block", "kind": "image", "file": "denoising_block.png", "title": "denoising_block"}
    ]


# ---------------------------------------------------------------------------- the run's state
def spec_only(run_dir: Path, benchmark: str = "elbo") -> Path:
    run_dir.mkdir(parents=True)
    spec = {"suite": run_dir.parent.name, "memory": "vae", "dataset": "digits", "benchmark": benchmark, "seed": 0}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    return run_dir


def test_status_and_report_agree_on_a_truncated_result(tmp_path: Path) -> None:
    run_dir = spec_only(tmp_path / "suite" / "vae-digits-elbo-s0")
    write_status(run_dir, "done")
    (run_dir / RESULT_FILE).write_text('{"status": "done", "metrics": {"nelbo')
    decided = run_state(run_dir)
    assert decided.state == "damaged" and "result.json: truncated or not JSON" in decided.reason
    (view,) = collect(tmp_path)
    runs = load_results(tmp_path).runs
    assert view.state == runs["status"].item() == "damaged" and view.reason == runs["reason"].item()
    assert read_result(run_dir) is None and decided.has_result  # the planner leaves it until --retry-failed


def test_a_running_run_whose_lock_is_free_is_interrupted_and_one_holding_it_is_running(tmp_path: Path) -> None:
    run_dir = spec_only(tmp_path / "suite" / "vae-digits-elbo-s0")
    with run_lock(run_dir):
        write_status(run_dir, "running")  # this process, holding the lock: running
        assert run_state(run_dir).state == "running"
    decided = run_state(run_dir)  # the same record, the lock released: the process is gone
    assert decided.state == "interrupted" and "ended without a result; a plain rerun resumes it" in decided.reason
    status = json.loads((run_dir / STATUS_FILE).read_text())
    (run_dir / STATUS_FILE).write_text(json.dumps({**status, "host": "elsewhere"}))
    assert run_state(run_dir).state == "running"  # another machine's process: cannot tell from here


# ---------------------------------------------------------------------------- declared line charts
def test_a_declared_line_chart_is_drawn_from_every_run_declaring_it(tmp_path: Path) -> None:
    figure = {"name": "time", "kind": "line", "file": "time.csv", "x": "T", "y": "ms", "error": "se",
              "hue": "op", "where": {"series": "grid"}, "integer_x": True, "logx": True}  # fmt: skip
    for model in ("vae", "gpm"):
        run_dir = spec_only(tmp_path / "suite" / f"{model}-digits-runtime-s0", "runtime")
        (run_dir / "time.csv").write_text(
            "T,ms,se,op,series\n8,1.0,0.1,read,grid\n8,2.0,0.1,write,grid\n8,9,0,x,steps\n"
        )
        write_result(run_dir, {"status": "done", "memory": model, **measured_fields([], [figure])})
    (made,) = line_charts(load_results(tmp_path), tmp_path / "figures")
    assert made.stem == "runtime_time_suite_digits" and made.section == "runtime"
    png = tmp_path / "figures" / f"{made.stem}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plt.imread(png).shape[1] > 200
