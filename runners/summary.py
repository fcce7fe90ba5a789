"""The end-of-run table: one row per run, one column per headline metric.

Rebuilt from the run directories every time (never appended), printed, and written as
``summary.csv`` and ``summary.md`` next to the runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from memorybench.benchmarks.artifacts import atomic_write_text
from memorybench.runners.results import read_result, run_state

ID_COLUMNS = ["memory", "dataset", "benchmark", "seed", "status"]


def summary_table(run_dirs: Iterable[Path]) -> pd.DataFrame:
    """Runs × metrics (per-term breakdowns left out); missing runs show their state."""
    rows: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        result = read_result(run_dir)
        if result is None:
            state, reason = run_state(run_dir)
            rows.append({"run_id": run_dir.name, "status": state, "note": reason})
            continue
        row = {key: result.get(key) for key in ID_COLUMNS}
        units = result.get("units", {})
        for name, value in (result.get("metrics") or {}).items():
            if "/" in name:
                continue
            unit = units.get(name)
            row[f"{name} [{unit}]" if unit else name] = value
        caveat = (result.get("protocol") or {}).get("caveat")  # e.g. "not a valid bound" (GPM code_compat)
        row["note"] = result.get("error") or result.get("reason") or caveat or ""
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    ordered = [c for c in ID_COLUMNS if c in table] + sorted(
        c for c in table if c not in [*ID_COLUMNS, "note", "run_id"]
    )
    ordered += [c for c in ("note",) if c in table and table[c].astype(bool).any()]
    return table[ordered]


def markdown(table: pd.DataFrame, float_format: str = "{:.3f}") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else float_format.format(value)
        return "" if value is None else str(value).replace("|", "\\|")

    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_summary(suite_dir: Path, run_dirs: list[Path], note: str = "") -> pd.DataFrame:
    """Build, write (csv + md, atomically) and return the summary table; the suite's ``note``
    (e.g. "a smoke test: its ranking means nothing") follows the Markdown table."""
    table = summary_table(run_dirs)
    atomic_write_text(suite_dir / "summary.csv", table.to_csv(index=False))
    text = markdown(table) if not table.empty else "(no runs)\n"
    atomic_write_text(suite_dir / "summary.md", text + (f"\nNote: {note}\n" if note else ""))
    return table
