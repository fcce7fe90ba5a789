"""Smoke checks every registered benchmark must pass (also for plugin authors).

``memorybench validate NAME`` runs them when ``NAME`` is a benchmark: the benchmark is built from
its default config (plus ``--set`` settings and small evaluation sizes), run once on a small,
untrained ``vae`` over the bundled ``digits`` data in a temporary run directory, and what it
returns is checked against the protocol of :mod:`memorybench.benchmarks.base`: a
:class:`BenchmarkOutcome` of :class:`Metric` objects with finite values, files that exist, and
:class:`Figure` declarations whose files and columns exist. Failures name the benchmark and what
is wrong, like the model kit (:mod:`memorybench.memories.conformance`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

import memorybench.benchmarks.common.datasets as datasets
from memorybench import memories
from memorybench.benchmarks.base import BENCHMARKS, Benchmark, BenchmarkContext, BenchmarkOutcome, Figure, Metric
from memorybench.memories.conformance import CheckResult, require, small_settings
from memorybench.memories.conformance import run_checks as run_model_kit_checks

SMALL = {"max_episodes": 4, "batch_episodes": 4, "episode_lengths": [4], "max_items": 16}  # where the config has them
MODEL, DATASET = "vae", "digits"


def build_benchmark(name: str, settings: Mapping[str, Any] | None = None) -> Benchmark:
    """Benchmark ``name`` with small evaluation sizes (keys its config has), then ``settings``."""
    target = BENCHMARKS.get(name)
    fields = {f.name for f in dataclasses.fields(target.config_class)}
    small = {key: value for key, value in SMALL.items() if key in fields}
    benchmark: Benchmark = BENCHMARKS.create(name, {**small, **(settings or {})})
    return benchmark


def check_not_applicable(name: str, settings: Mapping[str, Any] | None = None) -> None:
    benchmark = build_benchmark(name, settings)
    for memory in memories.available():
        reason = benchmark.not_applicable(memories.MEMORIES.get(memory))
        require(reason is None or isinstance(reason, str), f"{name}.not_applicable({memory}) must return str or None")


def check_run(name: str, settings: Mapping[str, Any] | None = None) -> None:
    benchmark = build_benchmark(name, settings)
    model_class = memories.MEMORIES.get(MODEL)
    if benchmark.not_applicable(model_class):
        return  # nothing to run on the reference model; plugin tests should run it on their own model
    dataset = datasets.create(DATASET)
    torch.manual_seed(0)
    model = memories.create(MODEL, image_shape=dataset.image_shape, **small_settings(MODEL)).eval()
    with tempfile.TemporaryDirectory(prefix="memorybench-validate-") as directory:
        run_dir = Path(directory)
        context = BenchmarkContext(model=model, dataset=dataset, run_dir=run_dir, seed=0, device=torch.device("cpu"))
        outcome = benchmark.run(context)
        check_outcome(name, outcome, run_dir)


def check_outcome(name: str, outcome: Any, run_dir: Path) -> None:
    """``outcome`` is what the protocol promises (see the module docstring)."""
    where = f"{name}.run"
    require(
        isinstance(outcome, BenchmarkOutcome), f"{where} returned {type(outcome).__name__}, expected BenchmarkOutcome"
    )
    require(outcome.metrics, f"{where} returned no metrics")
    for metric in outcome.metrics:
        require(isinstance(metric, Metric), f"{where}: a metric is {type(metric).__name__}, expected Metric")
        require(
            isinstance(metric.value, float) and math.isfinite(metric.value), f"{where}: {metric.name} = {metric.value}"
        )
        require("/" not in metric.name, f"{where}: metric {metric.name!r}: put settings into tags, not the name")
    for file in outcome.files:
        require((run_dir / file).is_file(), f"{where} lists file {file!r}, which it did not write")
    for figure in outcome.figures:
        require(isinstance(figure, Figure), f"{where}: a figure is {type(figure).__name__}, expected Figure")
        require(figure.kind in ("line", "image"), f"{where}: figure {figure.name!r} has kind {figure.kind!r}")
        path = run_dir / figure.file
        require(path.is_file(), f"{where}: figure {figure.name!r} names file {figure.file!r}, which it did not write")
        if figure.kind == "line":
            with path.open(newline="", encoding="utf-8") as handle:
                header = next(csv.reader(handle), [])
            needed = [figure.x, figure.y, figure.error, figure.facet, figure.hue, *figure.where]
            missing = [column for column in needed if column and column not in header]
            require(not missing, f"{where}: figure {figure.name!r}: {figure.file} has no column {missing[:1]}")


CHECKS: dict[str, Callable[..., None]] = {"not_applicable": check_not_applicable, "run": check_run}


def run_checks(name: str, settings: Mapping[str, Any] | None = None) -> list[CheckResult]:
    """Every check on registered benchmark ``name``; failures are collected, not raised."""
    return run_model_kit_checks(name, settings, CHECKS)
