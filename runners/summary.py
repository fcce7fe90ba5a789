"""The end of a run: a table with one row per run and one column per headline metric, then one
line saying which model came first, by how much, and the command to look further.

Rebuilt from the run directories every time (never appended), printed, and written as
``summary.csv`` and ``summary.md`` next to the runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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


# ---------------------------------------------------------------------------- the verdict line
EPISODES_SUFFIX = "_episodes.csv"  # per-episode scores (an ``episode`` column): differences are paired on them
SHOWN_GROUPS = 3  # verdict lines printed at most (one per dataset × benchmark × headline metric)


@dataclass(frozen=True)
class _Score:
    """A done run's headline measurement (its benchmark's first untagged one)."""

    memory: str
    seed: int
    run_dir: Path
    name: str
    unit: str
    value: float
    stderr: float
    higher_is_better: bool


def _headline(run_dir: Path) -> tuple[tuple[str, str, str], _Score] | None:
    result = run_state(run_dir).result
    if not result or result.get("status") != "done":
        return None
    for item in measurements(result):
        if not item["tags"] and isinstance(item["value"], (int, float)) and math.isfinite(item["value"]):
            key = (str(result.get("dataset")), str(result.get("benchmark")), str(item["name"]))
            stderr = float(item["stderr"]) if isinstance(item.get("stderr"), (int, float)) else math.nan
            score = _Score(
                str(result.get("memory")),
                int(result.get("seed") or 0),
                run_dir,
                str(item["name"]),
                str(item["unit"] or ""),
                float(item["value"]),
                stderr,
                bool(item["higher_is_better"]),
            )
            return key, score
    return None


def _episode_scores(run_dir: Path, metric: str) -> pd.Series | None:
    """Per-episode values of ``metric`` from the run's ``*_episodes.csv``, indexed by episode."""
    for path in sorted(run_dir.glob(f"*{EPISODES_SUFFIX}")):
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError):
            continue
        if "episode" in table and metric in table:
            return pd.to_numeric(table.set_index("episode")[metric], errors="coerce")
    return None


def _difference(best: list[_Score], other: list[_Score]) -> tuple[float, float, str]:
    """Mean of best − other and its standard error: paired over the episodes both scored (same
    seed, same episode index) when their per-episode files exist, else from the two standard errors."""
    diffs: list[float] = []
    for a in best:
        for b in other:
            if a.seed != b.seed:
                continue
            left, right = _episode_scores(a.run_dir, a.name), _episode_scores(b.run_dir, b.name)
            if left is None or right is None:
                continue
            joined = (left - right).dropna()
            diffs += [float(v) for v in joined if math.isfinite(v)]
    if len(diffs) >= 2:
        values = np.asarray(diffs)
        return (
            float(values.mean()),
            float(values.std(ddof=1) / math.sqrt(len(values))),
            f"paired over {len(diffs)} episodes",
        )
    mean = float(np.mean([s.value for s in best]) - np.mean([s.value for s in other]))
    stderr = math.sqrt(
        np.mean([s.stderr for s in best]) ** 2 / len(best) + np.mean([s.stderr for s in other]) ** 2 / len(other)
    )
    return mean, stderr, "unpaired"


def verdict(run_dirs: Iterable[Path], note: str = "") -> list[str]:
    """One line per dataset × benchmark (at most :data:`SHOWN_GROUPS`): the model with the best
    headline metric and its margin over the runner-up, ± its standard error."""
    groups: dict[tuple[str, str, str], dict[str, list[_Score]]] = {}
    for run_dir in run_dirs:
        found = _headline(run_dir)
        if found is not None:
            key, score = found
            groups.setdefault(key, {}).setdefault(score.memory, []).append(score)
    lines = []
    for (dataset, benchmark, metric), by_model in groups.items():
        if len(by_model) < 2:
            continue
        higher = next(iter(by_model.values()))[0].higher_is_better
        ranked = sorted(by_model, key=lambda m: float(np.mean([s.value for s in by_model[m]])), reverse=higher)
        first, second = by_model[ranked[0]], by_model[ranked[1]]
        mean, stderr, basis = _difference(first, second)
        unit = f" {first[0].unit}" if first[0].unit else ""
        value = float(np.mean([s.value for s in first]))
        word, side = ("highest", "above") if higher else ("lowest", "below")
        lines.append(
            f"{ranked[0]} has the {word} {metric} on {dataset}/{benchmark} ({value:.2f}{unit}): "
            f"{abs(mean):.2f} ± {stderr:.2f} {side} {ranked[1]} (± one standard error, {basis})"
        )
    extra = len(lines) - SHOWN_GROUPS
    lines = lines[:SHOWN_GROUPS] + ([f"... and {extra} more comparisons (see the report)"] if extra > 0 else [])
    if lines and note:
        lines[-1] += "; read it with the note above"
    return lines
