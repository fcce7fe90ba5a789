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

import pytest
import yaml

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
