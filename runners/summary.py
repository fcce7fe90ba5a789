"""The end-of-run table: one row per run, one column per headline metric.

Rebuilt from the run directories every time (never appended), printed, and written as
``summary.csv`` and ``summary.md`` next to the runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from memorybench.reports.tables import frame_markdown
from memorybench.runners.schema import atomic_write_text, measurements, run_state

ID_COLUMNS = ["memory", "dataset", "benchmark", "seed", "status"]


def summary_table(run_dirs: Iterable[Path]) -> pd.DataFrame:
    """Runs × metrics (tagged measurements, e.g. per-T or per-term breakdowns, left out); runs
    without a result show their state."""
    rows: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        decided = run_state(run_dir)
        result = decided.result
        if result is None:
            rows.append({"run_id": run_dir.name, "status": decided.state, "note": decided.reason})
            continue
        row = {key: result.get(key) for key in ID_COLUMNS}
        for item in measurements(result):
            if not item["tags"]:
                row[f"{item['name']} [{item['unit']}]" if item["unit"] else item["name"]] = item["value"]
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


def write_summary(suite_dir: Path, run_dirs: list[Path], note: str = "") -> pd.DataFrame:
    """Build, write (csv + md, atomically) and return the summary table; the suite's ``note``
    (e.g. "a smoke test: its ranking means nothing") follows the Markdown table."""
    table = summary_table(run_dirs)
    atomic_write_text(suite_dir / "summary.csv", table.to_csv(index=False))
    text = frame_markdown(table) if not table.empty else "(no runs)\n"
    atomic_write_text(suite_dir / "summary.md", text + (f"\nNote: {note}\n" if note else ""))
    return table
