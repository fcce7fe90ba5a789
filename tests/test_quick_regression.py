"""Regression guard: the quick suites give the same per-episode numbers as the committed baseline.

Every quick suite (the demo, quick_all and the ``*_quick`` benchmark configs, runtime excepted:
it measures time) runs inline for a few training steps on one thread with its seed; every number
in the CSV files its evaluations write is compared with ``baselines/quick_regression.json`` (every
row of a column up to ``ROWS_KEPT`` rows; beyond that the first rows and the column's count, sum
and sum of squares, so any changed row still shows). A
refactor that changes what a model or a benchmark computes fails here; a deliberate change of
behaviour regenerates the baseline (``MEMORYBENCH_REGENERATE=1 pytest tests/test_quick_regression.py``)
and says why in its commit.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest

from memorybench.runners.cli import main

REPO = Path(__file__).resolve().parents[1]
BASELINE = Path(__file__).parent / "baselines" / "quick_regression.json"
SUITES = [
    "configs/quick.yaml",
    "configs/quick_all.yaml",
    "configs/benchmarks/elbo_quick.yaml",
    "configs/benchmarks/denoising_quick.yaml",
    "configs/benchmarks/retrieval_quick.yaml",
    "configs/benchmarks/generation_quick.yaml",
    "configs/benchmarks/energy_quick.yaml",
    "configs/benchmarks/capacity_quick.yaml",
]
# Columns that measure the machine (time, process memory), not the model.
TIMING_COLUMNS = ("seconds", "_ms", "wall", "time", "memory_mb")
ROWS_KEPT = 32
SHORT = ["train.steps=8", "train.checkpoint_every=8", "train.validate_every=0", "train.threads=1"]


def suite_numbers(suite: str, out: Path) -> dict[str, float]:
    """The suite's CSV numbers, keyed ``memory/dataset/benchmark/s<seed>/file/column/row`` (or ``/count``, ``/sum``, ``/sumsq``)."""
    overrides = [arg for item in SHORT for arg in ("--set", item)]
    assert main(["run", str(REPO / suite), "--out", str(out), "--no-progress", *overrides]) == 0
    numbers: dict[str, float] = {}
    for result_file in sorted(out.glob("*/*/result.json")):
        result = json.loads(result_file.read_text())
        key = f"{result['memory']}/{result['dataset']}/{result['benchmark']}/s{result['seed']}"
        for table in sorted(result_file.parent.glob("*.csv")):
            for column, values in numeric_columns(table).items():
                prefix = f"{key}/{table.name}/{column}"
                numbers.update({f"{prefix}/{row}": value for row, value in enumerate(values[:ROWS_KEPT])})
                if len(values) > ROWS_KEPT:
                    finite = [value for value in values if math.isfinite(value)]
                    numbers[f"{prefix}/count"] = float(len(values))
                    numbers[f"{prefix}/sum"] = math.fsum(finite)
                    numbers[f"{prefix}/sumsq"] = math.fsum(value * value for value in finite)
    return numbers


def numeric_columns(table: Path) -> dict[str, list[float]]:
    """The CSV's columns as floats (text cells as NaN; timing and memory columns left out)."""
    columns: dict[str, list[float]] = {}
    with table.open() as handle:
        for row in csv.DictReader(handle):
            for column, cell in row.items():
                if any(part in column for part in TIMING_COLUMNS):
                    continue
                try:
                    columns.setdefault(column, []).append(float(cell))
                except (TypeError, ValueError):
                    columns.setdefault(column, []).append(math.nan)
    return columns


@pytest.mark.slow
@pytest.mark.parametrize("suite", SUITES)
def test_quick_suite_numbers_match_the_baseline(suite: str, tmp_path: Path) -> None:
    numbers = suite_numbers(suite, tmp_path)
    assert numbers, f"{suite} wrote no numbers"
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    if os.environ.get("MEMORYBENCH_REGENERATE"):
        baseline[suite] = numbers
        BASELINE.write_text(json.dumps(baseline, indent=0, sort_keys=True) + "\n")
        return
    expected = baseline[suite]
    assert sorted(numbers) == sorted(expected), f"{suite}: different rows or columns"
    different = [
        f"{key}: {numbers[key]!r} != {expected[key]!r}"
        for key in expected
        if not (
            math.isclose(numbers[key], expected[key], rel_tol=1e-5, abs_tol=1e-6)
            or (math.isnan(numbers[key]) and math.isnan(expected[key]))
        )
    ]
    assert not different, f"{suite}: {len(different)} numbers changed, e.g. " + "; ".join(different[:5])
