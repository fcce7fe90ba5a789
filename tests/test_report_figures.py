"""Every figure the benchmarks declare is drawn from real runs on real data (binarized MNIST).

The report tests in ``test_reports.py`` use hand-written CSVs; this one runs all seven benchmarks
on the shared binarized MNIST files with a tiny GPM (the one model with a latent memory, so
retrieval applies) and builds the report through the CLI, which exits 1 when any figure fails.
Every figure a run declared in its ``result.json`` must be in the report, under the name the
report gives it (line charts ``<benchmark>_<name>_<suite>_<dataset>``, images
``images_<suite>_<benchmark>_<dataset>_<name>_<memory>``).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

from memorybench.reports.aggregate import aggregate
from memorybench.reports.benchmark_figures import _draw_line_chart, _prepared
from memorybench.reports.figures import _interval, paired_forest, palette
from memorybench.reports.load import load_results
from memorybench.reports.paper_tables import benchmark_tables
from memorybench.runners.cli import main

SUITE = {
    "name": "figures",
    "defaults": {"code_size": 8, "episode_length": 4, "network": "mlp", "hidden_size": 16},
    "memories": {"gpm": {"memory_size": 4}},
    "datasets": {"binarized_mnist": {}},
    "benchmarks": {
        "elbo": {"max_episodes": 2},
        "denoising": {
            "episode_lengths": [4],
            "max_episodes": 1,
            "steps": 2,
            "salt_pepper": [0.1],
            "block": [6],
            "rotation": [15],
            "gaussian": [0.5],
        },
        "generation": {"max_episodes": 2, "samples": 2, "steps": 1, "grid_episodes": 1, "grid_samples": 2},
        "capacity": {
            "lengths": [4, 8],
            "max_episodes": 1,
            "max_queries": 8,
            "huge_split": "test",
            "huge_queries": 4,
            "huge_steps": 2,
        },
        "retrieval": {"episode_lengths": [4], "max_episodes": 2},
        "energy": {"max_episodes": 1, "steps": 2},
        "runtime": {
            "episode_lengths": [4],
            "memory_sizes": [4, 8],
            "steps": [1, 2],
            "steps_at": [],
            "batch_episodes": 2,
            "warmup": 0,
            "repeats": 1,
        },
    },
    "train": {"steps": 2, "batch_episodes": 2, "checkpoint_every": 2},
}


def test_every_benchmark_figure_is_drawn_from_real_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    out = tmp_path / "results"
    argv = ["run", str(suite), "--out", str(out), "--data-root", str(shared_data), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    report = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report), "--format", "md"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr()
    assert "error" not in printed.err and "not drawn" not in printed.out
    stems = {path.stem for path in (report / "figures").glob("*.png")}
    declared = set()
    for path in out.glob("figures/*/result.json"):
        result = json.loads(path.read_text())
        declared |= {(result["benchmark"], figure["kind"], figure["name"]) for figure in result["figures"]}
    assert {benchmark for benchmark, _, _ in declared} == set(SUITE["benchmarks"])  # every benchmark declares some
    assert ("elbo", "image", "reconstructions") in declared
    for benchmark, kind, name in declared:
        if kind == "line":
            stem = f"{benchmark}_{name}_figures_binarized_mnist"
        else:
            stem = f"images_figures_{benchmark}_binarized_mnist_{name}_gpm"
        assert stem in stems, (stem, sorted(stems))
    for prefix in ("elbo_", "training_"):  # the report's own figures, from metrics and training curves
        assert any(stem.startswith(prefix) for stem in stems), prefix
    assert not (report / "report.log").exists()


# ---------------------------------------------------------------------------- figure conventions (synthetic, fast)
def _denoising_steps(model: str, shift: float) -> pd.DataFrame:
    rows = []
    for noise, level in (("salt_pepper", "0.1"), ("block", "6")):
        for step in range(4):
            rows.append(
                {"T": 4, "noise": noise, "level": level, "step": step, "hamming_mean": 40.0 - 8 * step + shift}
                | {"hamming_stderr": 2.0, "success_rate": min(0.2 * step + shift / 100, 1.0), "queries": 16}
            )
    return pd.DataFrame(rows).assign(model=model, seed=0, dataset="digits", suite="s", benchmark="denoising")


def test_denoising_panels_per_noise_with_models_overlaid_units_and_bands() -> None:
    from memorybench.benchmarks.denoising import LEVEL_UNITS

    data = pd.concat([_denoising_steps("gpm", 0.0), _denoising_steps("vae", 5.0)], ignore_index=True)
    colours = palette(["gpm", "vae"])
    common = {"x": "step", "facet": "noise", "hue": "level", "where": {"T": 4}, "integer_x": True}
    specs = [
        {**common, "y": "hamming_mean", "error": "hamming_stderr", "facet_units": LEVEL_UNITS},
        {**common, "y": "success_rate", "trials": "queries", "facet_units": LEVEL_UNITS},
    ]
    for spec in specs:
        fig = _draw_line_chart(_prepared(data, spec), spec, colours)
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in axes] == [
            "salt_pepper (levels: fraction of pixels)",
            "block (levels: pixels (side of the square))",
        ]
        for ax in axes:
            drawn = [line for line in ax.get_lines() if len(line.get_xdata()) == 4]
            assert {tuple(np.round(line.get_color()[:3], 3)) for line in drawn} == {
                tuple(np.round(colours[m][:3], 3)) for m in ("gpm", "vae")
            }  # the two memories overlaid in every panel
            assert len(ax.collections) == 2  # a band per memory (standard errors, or binomial from queries)
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert all(float(t).is_integer() for t in ticks)
            assert [text.get_text() for text in ax.get_legend().get_texts()] == [
                "level " + ("0.1" if "salt" in ax.get_title() else "6")
            ]
        assert [text.get_text() for text in fig.legends[0].get_texts()] == ["gpm", "vae"]
        plt.close(fig)


def test_a_single_x_value_gets_a_visible_axis() -> None:
    spec = {"x": "level", "y": "success_rate", "integer_x": False}
    data = pd.DataFrame({"level": [0.1, 0.1], "success_rate": [0.5, 0.6], "model": ["a", "b"], "seed": [0, 0]})
    fig = _draw_line_chart(data, spec, palette(["a", "b"]))
    low, high = fig.axes[0].get_xlim()
    assert low < 0.1 < high and high - low >= 0.5
    plt.close(fig)


def test_elbo_error_bar_with_one_seed_is_the_episode_stderr() -> None:
    one = pd.DataFrame({"value": [100.0], "stderr": [0.5]})
    mean, half, basis = _interval(one)
    assert (mean, round(half, 6)) == (100.0, round(1.959963984540054 * 0.5, 6)) and "one seed" in basis
    several = pd.DataFrame({"value": [1.0, 2.0, 3.0], "stderr": [9.0, 9.0, 9.0]})
    assert _interval(several)[2] == "t over seeds" and 2.0 < _interval(several)[1] < 2.6


def test_paired_panels_of_pure_noise_are_left_out(tmp_path: Path) -> None:
    base = {"dataset": "d", "unit": "u", "higher_is_better": False, "model_a": "a", "model_b": "b", "n_seeds": 1}
    paired = pd.DataFrame(
        [
            base
            | {"suite": "s1", "benchmark": "elbo", "metric": "nelbo_cond", "mean_diff": -5.0}
            | {"ci95_low": -6.0, "ci95_high": -4.0, "n_pairs": 50},
            base
            | {"suite": "s1", "benchmark": "elbo", "metric": "kl_z", "mean_diff": 0.1}
            | {"ci95_low": -1.9, "ci95_high": 2.1, "n_pairs": 50},
        ]
    )
    (figure,) = paired_forest(paired, tmp_path)
    assert "Left out" in figure.caption and "s1/elbo: kl_z" in figure.caption
    assert (tmp_path / "paired_differences.png").is_file()
    assert paired_forest(paired.iloc[1:], tmp_path) == []  # nothing but noise: no figure


def test_descriptive_metrics_are_never_ranked(tmp_path: Path) -> None:
    from test_reports import measure, write_run

    for model, value in (("gpm", 3.0), ("vae", 5.0)):
        within = measure("within_episode_distance_mean", 40.0 + value, unit="pixels") | {"descriptive": True}
        write_run(tmp_path, model, "d", "generation", 0, [measure("nn_distance_mean", value, unit="pixels"), within])
    results = load_results(tmp_path)
    (table,) = benchmark_tables(results.current_runs, aggregate(results.current_metrics))
    directions = {column.header: column.higher_is_better for column in table.columns}
    assert directions == {"nn_distance_mean": False, "within_episode_distance_mean": None}
    best = [(row, column.header) for row in table.rows for column in table.columns if table.cell(row, column.key).best]
    assert best == [(("d", "gpm"), "nn_distance_mean")]
