"""Statistics over seeds, and paired differences between models on shared episodes.

- :func:`aggregate`: per (suite, model, dataset, benchmark, metric) the number of seeds ``n``, the
  mean, the sample standard deviation (ddof 1) and a two-sided 95 % confidence interval of the mean
  from Student's t with n − 1 degrees of freedom. With one seed the spread is unknown: std and CI
  are NaN (shown as such, never as 0).
- :func:`paired_differences`: benchmarks that save per-episode or per-query values
  (:data:`PAIRED_FILES`: the ELBO benchmark's ``elbo_episodes.csv``, denoising's
  ``denoising_queries.csv``, retrieval's ``retrieval_items.csv``) score every model on the same
  episodes and queries when they share suite, dataset, benchmark, seed and the episode protocol
  (episode seed, length, split). Model A − model B is then computed per episode (or query). With
  two or more seeds the CI is over the per-seed mean differences (it includes training
  randomness); with one seed it is over the paired units (conditional on the one trained model
  each) — ``ci_basis`` says which. Per-query values are pooled over all queries of a run (every
  T, noise and level), which weights cells by their number of queries.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from memorybench.reports.load import TAG_PREFIX, Results

CONFIDENCE = 0.95
GROUP = [
    *("suite", "model", "memory_class", "dataset", "benchmark", "metric", "tags", "unit"),
    *("higher_is_better", "descriptive"),
]
EPISODE_FILE_SUFFIX = "_episodes.csv"  # any such file with an ``episode`` column pairs by episode
# file -> (columns identifying one paired unit, {value column: (unit, higher_is_better)})
PAIRED_FILES: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, bool]]]] = {
    "denoising_queries.csv": (
        ("T", "noise", "level", "episode", "item"),
        {"hamming_final": ("pixels", False), "success": ("fraction", True)},
    ),
    "retrieval_items.csv": (("T", "episode", "item"), {"cosine": ("cosine", True), "relative_error": ("ratio", False)}),
}
EPISODE_PROTOCOL_KEYS = ("episode_seed", "episode_length", "episode_lengths", "split", "episodes")


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(mean, std, ci_low, ci_high) of ``values``; std and CI are NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = values.size
    if n == 0:
        return (math.nan,) * 4
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def aggregate(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, 95 % CI and n over seeds of the (current) long-format metrics, per metric and tags
    (the ``tag_<key>`` columns are carried along)."""
    tag_columns = [c for c in metrics.columns if c.startswith(TAG_PREFIX)]
    columns = [*GROUP, *tag_columns, "n", "mean", "std", "ci95_low", "ci95_high", "stderr_within", "seeds", "run_ids"]
    if metrics.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in metrics.groupby(GROUP, dropna=False, sort=True):
        finite = group[np.isfinite(group["value"])]
        mean, std, low, high = t_interval(finite["value"].to_numpy())
        rows.append(
            {
                **dict(zip(GROUP, key)),
                **group[tag_columns].iloc[0].to_dict(),
                "n": len(finite),
                "mean": mean,
                "std": std,
                "ci95_low": low,
                "ci95_high": high,
                "stderr_within": float(group["stderr"].mean()) if group["stderr"].notna().any() else math.nan,
                "seeds": ",".join(str(s) for s in sorted(finite["seed"].dropna().astype(int).unique())),
                "run_ids": ",".join(sorted(group["run_id"])),
            }
        )
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------- paired differences
def episode_tables(results: Results) -> pd.DataFrame:
    """Per-unit values of current done runs, long: suite, dataset, benchmark, seed, protocol, model, unit, metric, value.

    ``unit`` identifies the paired unit (an episode, or T/noise/level/episode/item of a query).
    """
    frames = []
    runs = results.current_runs
    for run in runs[runs["status"] == "done"].itertuples(index=False):
        payload = results.payloads.get(run.run_id, {})
        protocol = payload.get("protocol") or {}
        for name, (keys, values) in _paired_files(Path(run.path), payload).items():
            try:
                table = pd.read_csv(Path(run.path) / name)
            except (OSError, ValueError, pd.errors.ParserError):
                continue
            if not all(k in table for k in keys):
                continue
            columns = [c for c in (values or table.columns) if c in table and c not in keys]
            numeric = table[columns].apply(pd.to_numeric, errors="coerce").astype(float)
            numeric["unit"] = table[list(keys)].astype(str).agg("|".join, axis=1)
            long = numeric.melt(id_vars="unit", var_name="metric", value_name="value")
            long["protocol"] = "|".join(f"{k}={protocol.get(k)}" for k in EPISODE_PROTOCOL_KEYS) + f"|{name}"
            for column in ("suite", "model", "dataset", "benchmark", "seed"):
                long[column] = getattr(run, column)
            frames.append(long)
    if not frames:
        return pd.DataFrame(
            columns=["suite", "dataset", "benchmark", "seed", "protocol", "model", "unit", "metric", "value"]
        )
    return pd.concat(frames, ignore_index=True)


def _paired_files(run_dir: Path, payload: dict) -> dict[str, tuple[tuple[str, ...], dict[str, tuple[str, bool]]]]:
    names = [str(f) for f in payload.get("files") or []] or sorted(p.name for p in run_dir.glob("*.csv"))
    found: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, bool]]]] = {}
    for name in names:
        if name in PAIRED_FILES:
            found[name] = PAIRED_FILES[name]
        elif name.endswith(EPISODE_FILE_SUFFIX):
            found[name] = (("episode",), {})  # units and directions: from the run's metrics
    return found


def paired_differences(results: Results, metrics: list[str] | None = None) -> pd.DataFrame:
    """Model A − model B on shared episodes, per (suite, dataset, benchmark, metric, A, B); A < B by name.

    ``metrics`` limits the columns compared (default: every per-episode column without a ``/``).
    """
    columns = [
        "suite",
        "dataset",
        "benchmark",
        "metric",
        "unit",
        "higher_is_better",
        "model_a",
        "model_b",
        "n_seeds",
        "n_pairs",
        "mean_diff",
        "ci95_low",
        "ci95_high",
        "ci_basis",
        "a_better_fraction",
    ]
    episodes = episode_tables(results)
    if episodes.empty:
        return pd.DataFrame(columns=columns)
    if metrics is None:
        episodes = episodes[~episodes["metric"].str.contains("/", regex=False)]
    else:
        episodes = episodes[episodes["metric"].isin(metrics)]
    untagged = results.current_metrics[results.current_metrics["tags"] == ""]
    info = untagged.drop_duplicates(["suite", "dataset", "benchmark", "metric"]).set_index(
        ["suite", "dataset", "benchmark", "metric"]
    )
    declared = {metric: spec for _, specs in PAIRED_FILES.values() for metric, spec in specs.items()}
    rows = []
    for (suite, dataset, benchmark, metric), group in episodes.groupby(["suite", "dataset", "benchmark", "metric"]):
        for model_a, model_b in itertools.combinations(sorted(group["model"].unique()), 2):
            diffs = _paired(group, model_a, model_b)
            if diffs.empty:
                continue
            key = (suite, dataset, benchmark, metric)
            if key in info.index:
                unit, higher = str(info.at[key, "unit"]), bool(info.at[key, "higher_is_better"])
            else:
                unit, higher = declared.get(metric, ("", False))
            per_seed = diffs.groupby("seed")["diff"].mean().to_numpy()
            if len(per_seed) >= 2:
                mean, _, low, high = t_interval(per_seed)
                basis = f"{len(per_seed)} seeds"
            else:
                mean, _, low, high = t_interval(diffs["diff"].to_numpy())
                basis = f"{len(diffs)} paired {'episodes' if diffs['protocol'].iloc[0].endswith(EPISODE_FILE_SUFFIX) else 'queries'}"
            better = diffs["diff"] > 0 if higher else diffs["diff"] < 0
            rows.append(
                {
                    "suite": suite,
                    "dataset": dataset,
                    "benchmark": benchmark,
                    "metric": metric,
                    "unit": unit,
                    "higher_is_better": higher,
                    "model_a": model_a,
                    "model_b": model_b,
                    "n_seeds": len(per_seed),
                    "n_pairs": len(diffs),
                    "mean_diff": mean,
                    "ci95_low": low,
                    "ci95_high": high,
                    "ci_basis": basis,
                    "a_better_fraction": float(better.mean()),
                }
            )
    return pd.DataFrame(rows, columns=columns)


def _paired(group: pd.DataFrame, model_a: str, model_b: str) -> pd.DataFrame:
    """Per (seed, protocol, unit) differences A − B where both models scored the same episode or query."""
    keys = ["seed", "protocol", "unit"]
    a = group[group["model"] == model_a][[*keys, "value"]]
    b = group[group["model"] == model_b][[*keys, "value"]]
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"))
    merged["diff"] = merged["value_a"] - merged["value_b"]
    return merged[np.isfinite(merged["diff"])]
