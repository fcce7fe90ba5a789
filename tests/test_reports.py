"""Reports: loading, aggregation, tables, figures and the CLI, on synthetic run directories with known values.

The synthetic tree (:func:`write_synthetic_tree`) holds every situation a real tree can: several
seeds, a failed run, a pending run, a not-applicable run, a benchmark run for some models only,
results written by schemas 0 and 1, a superseded configuration, per-episode and per-query files,
and the CSVs and PNGs of the figures the runs declare. The last test runs the quick suite through
the CLI.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from memorybench.reports.aggregate import aggregate, paired_differences, t_interval
from memorybench.reports.build import build_report, parse_formats
from memorybench.reports.load import load_results
from memorybench.reports.paper_tables import nelbo_table, table_datasets
from memorybench.reports.reference import load_reference
from memorybench.reports.tables import Cell, Column, Table, latex_escape, mark_best, to_csv, to_latex, to_markdown
from memorybench.runners.cli import main
from memorybench.runners.schema import convert_result, measured_fields

REPO = Path(__file__).resolve().parents[1]
T_975 = {1: 12.706204736174707, 2: 4.302652729911275, 3: 3.182446305284263}  # Student t 97.5 % quantiles

GPM_NELBO = [30.0, 31.0, 35.0]  # seeds 0, 1, 2: mean 32, std sqrt(7)
VAE_NELBO = [80.0, 81.0, 82.0]
DKM_NELBO = [70.0, 72.0]  # seed 2 failed
DKM_FULL = [75.0, 76.0]
# per-episode NELBO-cond of gpm minus vae, per seed: means 2, 4, 1
EPISODE_DIFFS = {0: [1.0, 2.0, 3.0], 1: [3.0, 4.0, 5.0], 2: [0.0, 0.0, 3.0]}


# ---------------------------------------------------------------------------- synthetic results tree
def measure(name: str, value: float, unit: str = "nats/image", higher: bool = False, stderr=None, **tags) -> dict:
    """One measurement as a benchmark reports it."""
    return {"name": name, "value": value, "unit": unit, "higher_is_better": higher, "stderr": stderr, "tags": tags}


DENOISING_STEPS = {"name": "steps", "kind": "line", "file": "denoising_steps.csv", "title": "error per reading step"}
DENOISING_STEPS |= {"x": "step", "y": "hamming_mean", "error": "hamming_stderr", "facet": "noise", "integer_x": True}
RUNTIME_FIGURE = {"name": "time_vs_T", "kind": "line", "file": "runtime.csv", "x": "T", "y": "median_ms"}


def write_run(
    root: Path,
    model: str,
    dataset: str,
    benchmark: str,
    seed: int,
    measurements: list[dict] | None = None,
    *,
    suite: str = "synth",
    status: str = "done",
    files: dict[str, pd.DataFrame] | None = None,
    images: list[str] = (),
    figures: list[dict] = (),
    protocol: dict | None = None,
    steps: int = 30,
    result: bool = True,
    reason: str = "",
    legacy: dict | None = None,
) -> Path:
    """One run directory as runners/execute.py writes it (schema 2; ``legacy``: the schema-1 fields instead)."""
    run_id = f"{model}-{dataset}-{benchmark}-s{seed}-{steps:010d}"
    run_dir = root / suite / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "suite": suite,
        "memory": model,
        "memory_class": model,
        "dataset": dataset,
        "benchmark": benchmark,
        "seed": seed,
        "run_id": run_id,
        "memory_config": {"episode_length": 8},
        "dataset_config": {},
        "benchmark_config": {},
        "train_config": {"steps": steps},
    }
    (run_dir / "spec.json").write_text(json.dumps(spec))
    state = status if result else "pending"
    (run_dir / "status.json").write_text(json.dumps({"state": state, "updated": f"2026-01-01T00:00:{steps:02d}"}))
    if not result:
        return run_dir
    payload = {
        "schema_version": 1 if legacy else 2,
        "run_id": run_id,
        "suite": suite,
        "memory": model,
        "memory_class": model,
        "dataset": dataset,
        "benchmark": benchmark,
        "seed": seed,
        "status": status,
        **(legacy or measured_fields(measurements or [], [*figures, *(image_figure(name) for name in images)])),
        "protocol": protocol or {"episode_seed": 1234, "episode_length": 8, "split": "test"},
        "files": [*(files or {}), *images],
        "git_commit": "abc123",
        "environment": {"device": "cpu"},
        "finished": f"2026-01-01T00:00:{steps:02d}+00:00",
        "wall_time_s": 1.0,
    }
    if status == "failed":
        payload["error"] = reason or "DivergenceError: training diverged at step 3"
    if status == "not_applicable":
        payload["reason"] = reason or "needs a latent memory"
    (run_dir / "result.json").write_text(json.dumps(payload))
    for name, frame in (files or {}).items():
        frame.to_csv(run_dir / name, index=False)
    for name in images:
        fig = plt.figure(figsize=(1, 1))
        fig.figimage(np.random.default_rng(seed).random((20, 30)), cmap="gray")
        fig.savefig(run_dir / name)
        plt.close(fig)
    curve = pd.DataFrame({"step": np.arange(1, 11), "loss": 100.0 - np.arange(10) - seed})
    curve.loc[9, "valid_nelbo_cond"] = 90.0
    curve.to_csv(run_dir / "train_curve.csv", index=False)
    return run_dir


def image_figure(file: str) -> dict:
    return {"name": Path(file).stem, "kind": "image", "file": file}


def elbo_episodes(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"episode": range(len(values)), "nelbo_cond": values})


def write_synthetic_tree(root: Path) -> Path:
    """The known-values tree used by most tests (and by the browser test)."""
    base = [50.0, 60.0, 70.0]
    for seed in range(3):
        vae_episodes = base
        gpm_episodes = [b + d for b, d in zip(base, EPISODE_DIFFS[seed])]
        write_run(
            root,
            "gpm",
            "binarized_mnist",
            "elbo",
            seed,
            [measure("nelbo_cond", GPM_NELBO[seed], stderr=0.5)],
            files={"elbo_episodes.csv": elbo_episodes(gpm_episodes)},
        )
        write_run(
            root,
            "vae",
            "binarized_mnist",
            "elbo",
            seed,
            [measure("nelbo_cond", VAE_NELBO[seed]), measure("nelbo_term", 1.0, term="kl")],
            files={"elbo_episodes.csv": elbo_episodes(vae_episodes)},
        )
    for seed in range(2):
        write_run(
            root,
            "dkm",
            "binarized_mnist",
            "elbo",
            seed,
            [measure("nelbo_cond", DKM_NELBO[seed]), measure("nelbo_full", DKM_FULL[seed])],
        )
    write_run(root, "dkm", "binarized_mnist", "elbo", 2, status="failed")
    write_run(root, "km", "binarized_mnist", "elbo", 0, result=False)  # pending
    truncated = write_run(root, "gpm", "omniglot", "elbo", 0, [measure("nelbo_cond", 1.0)])
    (truncated / "result.json").write_text('{"status": "do')  # a crash mid-write on a filesystem without atomic renames
    # an older configuration of gpm (fewer steps): superseded, never averaged with the current one
    write_run(root, "gpm", "binarized_mnist", "elbo", 0, [measure("nelbo_cond", 999.0)], steps=5)
    # a result from before schema_version existed (no spec.json, nested metrics)
    legacy = root / "synth" / "vae-omniglot-elbo-s0-legacy"
    legacy.mkdir(parents=True)
    (legacy / "result.json").write_text(
        json.dumps(
            {
                "suite": "synth",
                "model": "vae",
                "dataset": "omniglot",
                "benchmark": "elbo",
                "seed": 0,
                "state": "done",
                "commit": "old",
                "metrics": {"nelbo_cond": {"value": 100.0, "unit": "nats/image", "higher_is_better": False}},
            }
        )
    )
    # denoising for gpm and dkm only (a benchmark present for some models only)
    for model, rate in (("gpm", 0.4), ("dkm", 0.05)):
        for seed in range(2):
            steps = pd.DataFrame(
                [
                    {
                        "T": t,
                        "noise": noise,
                        "level": level,
                        "step": step,
                        "hamming_mean": 50.0 / (step + 1) + t,
                        "hamming_stderr": 1.0,
                        "success_rate": rate,
                        "queries": 8,
                    }
                    for t in (4, 8)
                    for noise, level in (("salt_pepper", 0.15), ("block", 12))
                    for step in range(4)
                ]
            )
            queries = pd.DataFrame(
                [
                    {
                        "T": 4,
                        "noise": "salt_pepper",
                        "level": 0.15,
                        "episode": 0,
                        "item": i,
                        "hamming_final": i + (0 if model == "gpm" else 3),
                        "success": model == "gpm",
                    }
                    for i in range(4)
                ]
            )
            cells = [measure("success_rate", rate, "fraction", True), measure("hamming_final", 10.0, "pixels")]
            for t in (4, 8):
                cells.append(measure("success_rate", rate, "fraction", True, T=t, noise="salt_pepper", level=0.15))
                cells.append(measure("success_rate", rate + 0.1, "fraction", True, T=t, noise="block", level=12))
            # dkm's second seed as schema 1 wrote it: tags in the metric names, read back as tags
            legacy = {
                "metrics": {legacy_name(c): c["value"] for c in cells},
                "units": {legacy_name(c): c["unit"] for c in cells},
                "higher_is_better": {legacy_name(c): c["higher_is_better"] for c in cells},
            }
            write_run(
                root,
                model,
                "omniglot",
                "denoising",
                seed,
                cells,
                files={"denoising_steps.csv": steps, "denoising_queries.csv": queries},
                images=["denoising_salt_pepper.png"],
                figures=[DENOISING_STEPS],
                protocol={"episode_seed": 1234, "episode_lengths": [4, 8], "split": "test"},
                legacy=legacy if (model, seed) == ("dkm", 1) else None,
            )
    write_run(root, "vae", "omniglot", "retrieval", 0, status="not_applicable")
    runtime = pd.DataFrame(
        [
            {"op": "write", "T": t, "K": k, "steps": 5, "device": "cpu", "median_ms": 0.1 * t * k}
            for t in (4, 8, 16)
            for k in (16, 32)
        ]
    )
    write_run(
        root,
        "gpm",
        "binarized_mnist",
        "runtime",
        0,
        [measure("write_ms", 1.0, "ms")],
        files={"runtime.csv": runtime},
        figures=[RUNTIME_FIGURE],
    )
    return root


def legacy_name(measurement: dict) -> str:
    """The name schema 1 gave a tagged metric: its tag values joined to it with slashes."""
    return "/".join([measurement["name"], *(f"T{v}" if k == "T" else str(v) for k, v in measurement["tags"].items())])


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_tree(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def report(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report(tree, out)
    return out


# ---------------------------------------------------------------------------- loading
def test_long_format_holds_every_run_and_metric(tree: Path) -> None:
    results = load_results(tree)
    metrics = results.metrics
    for column in (
        "model",
        "dataset",
        "benchmark",
        "seed",
        "metric",
        "value",
        "stderr",
        "higher_is_better",
        "tags",
        "run_id",
        "git_commit",
    ):
        assert column in metrics
    gpm = results.current_metrics.query("model == 'gpm' and metric == 'nelbo_cond'")
    assert sorted(gpm["value"]) == GPM_NELBO
    assert set(gpm["stderr"]) == {0.5}  # the standard error is data, in its own column
    term = metrics.query("model == 'vae' and metric == 'nelbo_term'")
    assert set(term["tags"]) == {"term=kl"} and set(term["tag_term"]) == {"kl"}
    # tags read the same from schema 2 (as data) and from schema 1 (encoded in the name)
    cells = metrics.query("benchmark == 'denoising' and model == 'dkm' and tag_noise == 'block' and tag_T == 8")
    assert (
        sorted(cells["seed"]) == [0, 1]
        and cells["value"].tolist() == [pytest.approx(0.15)] * 2
        and set(cells["tag_level"]) == {12}
    )
    assert set(cells["schema_version"]) == {1, 2} and not metrics["metric"].str.contains("/").any()
    states = results.runs.set_index("run_id")["status"]
    assert states["dkm-binarized_mnist-elbo-s2-0000000030"] == "failed"
    assert states["km-binarized_mnist-elbo-s0-0000000030"] == "pending"
    assert states["vae-omniglot-retrieval-s0-0000000030"] == "not_applicable"
    assert states["gpm-omniglot-elbo-s0-0000000030"] == "damaged"
    reason = results.runs.set_index("run_id").at["gpm-omniglot-elbo-s0-0000000030", "reason"]
    assert "result.json: truncated or not JSON" in reason


def test_older_configuration_is_superseded_not_averaged(tree: Path) -> None:
    results = load_results(tree)
    old = results.runs.set_index("run_id").loc["gpm-binarized_mnist-elbo-s0-0000000005"]
    assert not old["current"]
    assert 999.0 not in set(results.current_metrics["value"])
    assert 999.0 in set(results.metrics["value"])  # still in the long table, marked current=False


def test_a_copied_run_directory_counts_once(tmp_path: Path) -> None:
    run = write_run(tmp_path, "gpm", "digits", "elbo", 0, [measure("nelbo_cond", 5.0)])
    shutil.copytree(run, tmp_path / "copy" / run.name)
    results = load_results(tmp_path)
    assert results.runs["run_id"].is_unique and results.runs["current"].sum() == 1
    assert aggregate(results.current_metrics)["n"].tolist() == [1]


def test_schema_zero_results_are_converted() -> None:
    converted, note = convert_result(
        {
            "model": "vae",
            "state": "done",
            "commit": "x",
            "metrics": {"a": {"value": 1.5, "unit": "u", "higher_is_better": True}},
        }
    )
    assert converted["memory"] == "vae" and converted["status"] == "done" and converted["git_commit"] == "x"
    assert converted["metrics"] == {"a": 1.5}
    assert converted["measurements"] == [
        {
            "name": "a",
            "value": 1.5,
            "unit": "u",
            "higher_is_better": True,
            "stderr": None,
            "tags": {},
            "descriptive": False,
        }
    ]
    assert note.startswith("converted from schema 0")
    assert convert_result({"schema_version": 2, "measurements": [], "metrics": {}, "status": "done"})[1] == ""


def test_legacy_run_in_tree_is_loaded_and_flagged(tree: Path) -> None:
    results = load_results(tree)
    legacy = results.runs.set_index("run_id").loc["vae-omniglot-elbo-s0-legacy"]
    assert legacy["status"] == "done" and legacy["converted"].startswith("converted from schema 0")
    value = results.metrics.query("run_id == 'vae-omniglot-elbo-s0-legacy'")["value"]
    assert list(value) == [100.0]


# ---------------------------------------------------------------------------- aggregation
def test_t_interval_matches_hand_computation() -> None:
    mean, std, low, high = t_interval(np.array(GPM_NELBO))
    assert mean == pytest.approx(32.0, abs=1e-12)
    assert std == pytest.approx(math.sqrt(7.0), abs=1e-12)
    half = T_975[2] * math.sqrt(7.0) / math.sqrt(3.0)
    assert (low, high) == (pytest.approx(32.0 - half, abs=1e-9), pytest.approx(32.0 + half, abs=1e-9))
    single = t_interval(np.array([5.0]))
    assert single[0] == 5.0 and all(math.isnan(v) for v in single[1:])


def test_aggregate_means_cis_and_n(tree: Path) -> None:
    aggregated = aggregate(load_results(tree).current_metrics).set_index(["model", "dataset", "benchmark", "metric"])
    gpm = aggregated.loc[("gpm", "binarized_mnist", "elbo", "nelbo_cond")]
    assert gpm["n"] == 3 and gpm["mean"] == pytest.approx(32.0) and gpm["seeds"] == "0,1,2"
    assert gpm["ci95_high"] - gpm["mean"] == pytest.approx(T_975[2] * math.sqrt(7.0 / 3.0))
    dkm = aggregated.loc[("dkm", "binarized_mnist", "elbo", "nelbo_cond")]
    assert dkm["n"] == 2  # the failed seed does not count
    assert dkm["ci95_high"] - dkm["mean"] == pytest.approx(T_975[1] * math.sqrt(2.0) / math.sqrt(2.0))
    assert math.isnan(aggregated.loc[("vae", "omniglot", "elbo", "nelbo_cond")]["std"])  # one seed: no spread


def test_paired_differences_over_seeds_and_over_episodes(tree: Path) -> None:
    results = load_results(tree)
    paired = paired_differences(results).set_index(["benchmark", "metric", "model_a", "model_b"])
    row = paired.loc[("elbo", "nelbo_cond", "gpm", "vae")]
    per_seed = [2.0, 4.0, 1.0]
    assert row["n_seeds"] == 3 and row["n_pairs"] == 9 and row["ci_basis"] == "3 seeds"
    assert row["mean_diff"] == pytest.approx(np.mean(per_seed))
    assert row["ci95_high"] - row["mean_diff"] == pytest.approx(T_975[2] * np.std(per_seed, ddof=1) / math.sqrt(3))
    assert row["a_better_fraction"] == 0.0  # gpm is never strictly lower (ties count as not better)
    queries = paired.loc[("denoising", "hamming_final", "dkm", "gpm")]
    assert queries["mean_diff"] == pytest.approx(3.0) and queries["a_better_fraction"] == 0.0


def test_paired_differences_with_one_seed_use_episodes(tmp_path: Path) -> None:
    write_run(
        tmp_path,
        "gpm",
        "digits",
        "elbo",
        0,
        [measure("nelbo_cond", 1.0)],
        files={"elbo_episodes.csv": elbo_episodes([11.0, 12.0, 13.0])},
    )
    write_run(
        tmp_path,
        "vae",
        "digits",
        "elbo",
        0,
        [measure("nelbo_cond", 1.0)],
        files={"elbo_episodes.csv": elbo_episodes([10.0, 10.0, 10.0])},
    )
    row = paired_differences(load_results(tmp_path)).iloc[0]
    assert row["ci_basis"] == "3 paired episodes" and row["mean_diff"] == pytest.approx(2.0)
    assert row["ci95_high"] - 2.0 == pytest.approx(T_975[2] * 1.0 / math.sqrt(3))


# ---------------------------------------------------------------------------- tables
def small_table() -> Table:
    table = Table(
        "demo",
        "Demo & test_table",
        index=["model"],
        columns=[
            Column("nll", "NLL", "nats/image", False),
            Column("acc", "accuracy", "%", True),
            Column("ref", "reported", "nats/image", False, reference=True),
        ],
    )
    values = {"a": (10.0, 90.0, 1.0), "b": (10.0, 95.0, 50.0), "c": (12.0, 95.0, 2.0)}
    for name, (nll, acc, ref) in values.items():
        row = (name,)
        table.rows.append(row)
        table.cells[(row, "nll")] = Cell(mean=nll, std=0.5, low=nll - 1, high=nll + 1, n=3)
        table.cells[(row, "acc")] = Cell(mean=acc, n=3)
        table.cells[(row, "ref")] = Cell(mean=ref)
    table.cells[(("c",), "acc")] = Cell(text="failed")
    return mark_best(table)


def test_best_marking_respects_direction_ties_and_reference_columns() -> None:
    table = small_table()
    best = {(row[0], key) for (row, key), cell in table.cells.items() if cell.best}
    assert best == {("a", "nll"), ("b", "nll"), ("b", "acc")}  # tie on NLL marks both; failed c is skipped
    everyone_equal = Table("eq", "eq", index=["m"], columns=[Column("x", "x", "", True)], rows=[("a",), ("b",)])
    everyone_equal.cells = {(("a",), "x"): Cell(mean=1.0), (("b",), "x"): Cell(mean=1.0)}
    assert not any(c.best for c in mark_best(everyone_equal).cells.values())


def test_markdown_parses_back_with_units_and_bold_best() -> None:
    text = to_markdown(small_table())
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["model", "NLL ↓ [nats/image]", "accuracy ↑ [%]", "reported ↓ [nats/image]", "n"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert all(len(r) == len(header) for r in rows)
    assert rows[0][1] == "**10.00 ± 0.50 [9.00, 11.00]**" and rows[2][2] == "failed" and rows[1][3] == "50"


def test_csv_parses_back_through_pandas() -> None:
    frame = pd.read_csv(__import__("io").StringIO(to_csv(small_table())))
    assert list(frame["model"]) == ["a", "b", "c"]
    assert list(frame["NLL [nats/image]"]) == [10.0, 10.0, 12.0]
    assert list(frame["NLL [nats/image] | best"]) == [True, True, False]
    assert list(frame["NLL [nats/image] | ci95_low"]) == [9.0, 9.0, 11.0]
    assert frame["accuracy [%] | note"].fillna("").tolist() == ["", "", "failed"]
    assert list(frame["reported [nats/image]"]) == [1.0, 50.0, 2.0]


def check_latex(text: str, columns: int) -> None:
    """Structural checks that stand in for a TeX engine: ASCII, balanced braces and environments, cells per row."""
    assert text.isascii()
    body = re.sub(r"\\[{}%&$#_]", "", text)
    assert body.count("{") == body.count("}")
    for env in ("table", "tabular"):
        assert text.count(f"\\begin{{{env}}}") == text.count(f"\\end{{{env}}}") == 1
    rows = text.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    for row in rows:
        assert re.sub(r"\\&", "", row).count("&") == columns - 1 and row.endswith("\\\\")


def test_latex_is_structurally_valid_and_compiles_when_tex_is_present(tmp_path: Path) -> None:
    text = to_latex(small_table())
    check_latex(text, columns=5)
    assert "\\textbf{10.00 $\\pm$ 0.50 [9.00, 11.00]}" in text and "Demo \\& test\\_table" in text
    assert latex_escape("50 % ± μ") == "50 \\% $\\pm$ ?"
    engine = shutil.which("pdflatex") or shutil.which("lualatex") or shutil.which("xelatex")
    if engine is None:
        return  # structural checks above stand in for compiling
    document = "\\documentclass{article}\\usepackage{booktabs,graphicx}\\begin{document}" + text + "\\end{document}\n"
    (tmp_path / "t.tex").write_text(document)
    done = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_table1_keeps_cond_and_full_apart_with_reference_columns(tree: Path) -> None:
    results, reference = load_results(tree), load_reference()
    aggregated = aggregate(results.current_metrics)
    first, _ = table_datasets(reference, results.current_runs)
    table = nelbo_table(1, results.current_runs, aggregated, reference, first)
    keys = [c.key for c in table.columns]
    assert keys[:4] == [
        "binarized_mnist|nelbo_cond",
        "binarized_mnist|ref_cond",
        "binarized_mnist|nelbo_full",
        "binarized_mnist|ref_full",
    ]

    def cell(model: str, key: str) -> Cell:
        return table.cell((model,), key)

    assert cell("gpm", "binarized_mnist|nelbo_cond").mean == pytest.approx(32.0)
    assert cell("gpm", "binarized_mnist|nelbo_cond").best is True  # 32 < 71 < 81
    assert cell("gpm", "binarized_mnist|ref_cond").mean == 31.48 and not cell("gpm", "binarized_mnist|ref_cond").best
    assert cell("vae", "binarized_mnist|ref_cond").mean == 87.86
    assert cell("dkm", "binarized_mnist|ref_full").mean == 75.3 and cell("dkm", "binarized_mnist|ref_cond").text == "—"
    assert cell("vae", "binarized_mnist|nelbo_full").text == "n/a"  # ran, has no memory prior
    assert cell("km", "binarized_mnist|nelbo_cond").text == "—"  # pending
    assert cell("vae", "omniglot|nelbo_cond").mean == 100.0 and cell("vae", "omniglot|ref_cond").mean == 104.75
    reference_columns = [c for c in table.columns if c.reference]
    assert all(c.header.startswith("reported") for c in reference_columns)


# ---------------------------------------------------------------------------- the whole report
def test_report_writes_every_output(report: Path) -> None:
    for name in ("report.html", "report.md", "results.csv", "aggregated.csv", "paired_differences.csv", "runs.csv"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0
    tables = {p.name for p in (report / "tables").iterdir()}
    for stem in ("table1_nelbo", "table2_denoising", "synth_elbo", "paired_differences", "reported_table1"):
        assert {f"{stem}.md", f"{stem}.tex", f"{stem}.csv"} <= tables
    for path in (report / "tables").glob("*.csv"):
        assert not pd.read_csv(path).empty
    for path in (report / "tables").glob("*.tex"):
        text = path.read_text()
        assert text.isascii() and text.count("\\begin{tabular}") == 1


def test_figures_are_non_empty_png_and_pdf(report: Path) -> None:
    pngs = sorted((report / "figures").glob("*.png"))
    stems = {p.stem for p in pngs}
    expected = (
        "training_synth_binarized_mnist",
        "elbo_synth_binarized_mnist",
        "paired_differences",
        "denoising_steps_synth_omniglot",  # the line charts the runs declared: benchmark, name, suite, dataset
        "runtime_time_vs_T_synth_binarized_mnist",
    )
    assert set(expected) <= stems
    assert any(s.startswith("images_synth_denoising_omniglot_denoising_salt_pepper") for s in stems)
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = plt.imread(png).shape[1::-1]
        assert width > 50 and height > 20
        assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def test_report_lists_missing_failed_and_converted_runs(report: Path) -> None:
    markdown = (report / "report.md").read_text()
    section = markdown.split("## Missing, failed and converted runs")[1].split("## Reported values")[0]
    assert "DivergenceError" in section and "pending" in section and "not_applicable" in section
    assert "converted from schema 0" in section
    assert "Superseded configurations and duplicates" in section and "gpm-binarized_mnist-elbo-s0-0000000005" in section
    html = (report / "report.html").read_text()
    assert html.count("<img ") == len(list((report / "figures").glob("*.png")))
    assert 'src="data:image/png;base64,' in html and "<script src" not in html  # inline only: no network


def test_table2_places_reported_values_beside_measured(report: Path) -> None:
    frame = pd.read_csv(report / "tables" / "table2_denoising.csv")
    row = frame[(frame["noise"] == "salt_pepper") & (frame["level"] == 0.15)].iloc[0]
    assert row["T=4: gpm [%]"] == pytest.approx(40.0)  # fraction 0.4 shown as %
    assert row["T=4: gpm reported [%]"] == 40.59 and row["T=8: dkm reported [%]"] == 1.24
    assert bool(row["T=4: gpm [%] | best"]) and not bool(row["T=4: dkm [%] | best"])


def test_formats_option_limits_outputs(tree: Path, tmp_path: Path) -> None:
    assert parse_formats("md, tex") == ["md", "latex"]
    with pytest.raises(ValueError):
        parse_formats("docx")
    build_report(tree, tmp_path, formats=["csv"])
    assert (tmp_path / "results.csv").is_file() and not (tmp_path / "report.html").exists()
    assert {p.suffix for p in (tmp_path / "tables").iterdir()} == {".csv"}


# ---------------------------------------------------------------------------- CLI
def test_cli_errors_on_empty_or_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memorybench: error:") and "does not exist" in err and len(err.splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no run directories" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "empty" / "report").exists()
    assert main(["report", str(tmp_path), "--format", "pdf"]) == 2


def test_quick_suite_report_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The quick suite (shrunk: 2 steps, tiny batches, 2 seeds) run and reported through the CLI."""
    overrides = [
        "train.steps=2",
        "train.batch_episodes=2",
        "train.validation_episodes=2",
        "seeds=[0,1]",
        "benchmarks.elbo.max_episodes=3",
    ]
    argv = ["run", str(REPO / "configs" / "quick.yaml"), "--out", str(tmp_path / "results"), "--no-progress"]
    assert main([*argv, *(a for o in overrides for a in ("--set", o))]) == 0
    assert main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "report")]) == 0
    out = tmp_path / "report"
    results = pd.read_csv(out / "results.csv")
    assert set(results["model"]) == {"vae", "gpm"} and set(results["seed"]) == {0, 1}
    table1 = pd.read_csv(out / "tables" / "table1_nelbo.csv").set_index("model")
    assert list(table1["digits: NELBO-cond [nats/image] | n"]) == [2, 2]
    assert table1["digits: NELBO-cond [nats/image] | best"].sum() == 1
    for stem in ("training_quick_digits", "elbo_quick_digits", "paired_differences"):
        assert (out / "figures" / f"{stem}.png").is_file() and (out / "figures" / f"{stem}.pdf").is_file()
    for model in ("vae", "gpm"):  # the reconstruction grid each ELBO run wrote and declared
        assert (out / "figures" / f"images_quick_elbo_digits_reconstructions_{model}.png").is_file()
    paired = pd.read_csv(out / "paired_differences.csv")
    assert set(paired["metric"]) == {"nelbo_cond", "nelbo_heldout", "heldout_gap"}
    assert set(paired["ci_basis"]) == {"2 seeds"} and (paired["n_pairs"] > 0).all()
    ranks = pd.read_csv(out / "ranks.csv").set_index(["metric", "model"])
    assert ranks.loc[("nelbo_cond", "vae"), "basis"].startswith("2 seeds")
    assert sorted(ranks.loc["nelbo_cond", "rank"]) == [1, 2]
    assert "report of 4 runs (4 done)" in capsys.readouterr().out


def test_markdown_report_indexes_every_figure_with_a_working_link(report: Path) -> None:
    markdown = (report / "report.md").read_text()
    figures = markdown.split("## Figures")[1].split("## Missing")[0]
    index = re.findall(r"^\d+\. \[[^\]]+\]\(#(fig-[^)]+)\)", figures, flags=re.M)
    anchors = re.findall(r'<a id="(fig-[^"]+)"></a>', figures)
    assert index and sorted(index) == sorted(anchors)
    assert len(anchors) == figures.count("![")
