"""The tuning table: what ``memorybench tune`` chose for each memory, read from the ``tune.json``
files in the suites' results directories (a result file like any other)."""

from __future__ import annotations

import json
from pathlib import Path

from memorybench.reports.load import Results
from memorybench.reports.tables import Cell, Table, listing_table
from memorybench.runners.schema import read_json

TUNE_FILE = "tune.json"


def tuning_table(results: Results) -> Table | None:
    """One row per (suite, memory, dataset) that was tuned: the chosen trial, its values and its
    validation score beside trial 0's (the suite's own settings); None when nothing was tuned."""
    table = listing_table(
        "tuning",
        "Tuning: the setting chosen per memory (random search on the validation split)",
        ["suite", "dataset", "memory"],
        [
            ("trials", "trials", ""),
            ("chosen", "chosen trial", ""),
            ("values", "chosen values", ""),
            ("score", "validation score", ""),
            ("default", "suite settings' score", ""),
        ],
    )
    suite_dirs = sorted({Path(path).parent for path in results.runs["path"]})
    for suite_dir in suite_dirs:
        record = read_json(suite_dir / TUNE_FILE)
        if not record:
            continue
        config = record.get("config") or {}
        metric = str(config.get("metric", "nelbo_cond"))
        defaults = {
            (t.get("memory"), t.get("dataset")): t.get(metric) for t in record.get("trials", []) if t.get("trial") == 0
        }
        for choice in record.get("chosen", []):
            row = (suite_dir.name, str(choice.get("dataset")), str(choice.get("memory")))
            table.rows.append(row)
            values = choice.get("values") or {}
            text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
            table.cells[(row, "trials")] = Cell(text=str(config.get("trials", "")))
            table.cells[(row, "chosen")] = Cell(text=str(choice.get("trial")))
            table.cells[(row, "values")] = Cell(text=text or "the suite's own settings")
            table.cells[(row, "score")] = Cell(mean=float(choice.get(metric) or "nan"))
            table.cells[(row, "default")] = Cell(
                mean=float(defaults.get((choice.get("memory"), choice.get("dataset"))) or "nan")
            )
        table.notes.append(
            f"{suite_dir.name}: {metric} on the validation split, lower is better; every trial's values and score are in "
            f"{suite_dir.name}/{TUNE_FILE} ({json.dumps({k: config.get(k) for k in ('trials', 'seed', 'episodes')})})."
        )
    return table if table.rows else None
