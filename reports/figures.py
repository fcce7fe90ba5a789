"""Figures (seaborn/matplotlib, Agg backend), each saved as PNG and PDF under ``figures/``.

Every figure function takes the loaded results and the output folder and returns the figures it
made — an empty list when the benchmark files it needs are absent (a partial results tree is
normal). Models keep one colour across all figures. Raw per-step files are read from the run
directories (``train_curve.csv``, the CSVs of declared figures); only current runs (:mod:`memorybench.reports.load`) count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from memorybench.reports.load import Results
from memorybench.reports.paper_tables import metric_label
from memorybench.runners.schema import CURVE_FILE

DPI = 130
Z_95 = 1.959963984540054  # two-sided 95 % normal quantile
MAX_CURVE_POINTS = 400  # long training curves are averaged into this many bins per run


@dataclass
class Figure:
    stem: str  # file name without extension under figures/
    title: str
    caption: str
    section: str = "Figures"

    @property
    def png(self) -> str:
        return f"{self.stem}.png"

    @property
    def pdf(self) -> str:
        return f"{self.stem}.pdf"


def palette(models: list[str]) -> dict[str, tuple[float, float, float]]:
    """One fixed colour per model label (sorted), shared by every figure."""
    names = sorted(set(models))
    colours = sns.color_palette("colorblind", max(len(names), 1))
    return {name: colours[i % len(colours)] for i, name in enumerate(names)}


def save(fig: plt.Figure, out: Path, stem: str, title: str = "", caption: str = "", section: str = "Figures") -> Figure:
    """Write ``fig`` as ``out/<stem>.png`` and ``.pdf``, close it, and describe it for the report."""
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{stem}.png", dpi=DPI, bbox_inches="tight")
    fig.savefig(out / f"{stem}.pdf", bbox_inches="tight")
    plt.close(fig)
    return Figure(stem, title, caption, section)


def run_csv(results: Results, name: str, benchmark: str | None = None) -> pd.DataFrame:
    """Concatenate ``name`` from every current, done run (of ``benchmark``), with run identity columns."""
    runs = results.current_runs
    runs = runs[runs["status"] == "done"]
    if benchmark is not None:
        runs = runs[runs["benchmark"] == benchmark]
    frames = [read_run_csv(run, Path(run.path) / name) for run in runs.itertuples(index=False)]
    frames = [frame for frame in frames if frame is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_run_csv(run: Any, path: Path) -> pd.DataFrame | None:
    """A CSV file a run wrote, with the run's identity columns; None when missing, unreadable or empty."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if frame.empty:
        return None
    for column in ("suite", "model", "dataset", "benchmark", "seed", "run_id"):
        frame[column] = getattr(run, column)
    return frame


def slug(*parts: object) -> str:
    text = "_".join(str(p) for p in parts if p not in (None, ""))
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


# ---------------------------------------------------------------------------- training
def training_curves(results: Results, out: Path) -> list[Figure]:
    """Training loss (and validation NELBO-cond) vs step, one panel per (suite, dataset)."""
    curves = run_csv(results, CURVE_FILE)
    if curves.empty or "step" not in curves or "loss" not in curves:
        return []
    curves = curves.drop_duplicates(["run_id", "step"])  # a resumed run may repeat steps
    # every benchmark run trains its own model; with one training setting they are the same curve:
    # keep one run per (suite, model, dataset, seed), the ELBO run when there is one
    first = (
        curves.assign(_elbo=curves["benchmark"] != "elbo")
        .sort_values(["_elbo", "benchmark"])
        .drop_duplicates(["suite", "model", "dataset", "seed"])["run_id"]
    )
    curves = curves[curves["run_id"].isin(set(first))]
    colours = palette(list(results.current_runs["model"]))
    figures = []
    for (suite, dataset), data in curves.groupby(["suite", "dataset"]):
        binned = _bin_steps(data)
        has_valid = "valid_nelbo_cond" in data and data["valid_nelbo_cond"].notna().any()
        fig, axes = plt.subplots(1, 2 if has_valid else 1, figsize=(11 if has_valid else 6, 3.8), squeeze=False)
        sns.lineplot(
            binned,
            x="step",
            y="loss",
            hue="model",
            hue_order=sorted(binned["model"].unique()),
            palette=colours,
            errorbar=("ci", 95),
            ax=axes[0, 0],
        )
        axes[0, 0].set(title="training loss (per image)", ylabel="loss [nats/image]")
        if _spans_decades(binned["loss"]):
            axes[0, 0].set_yscale("log")
        if has_valid:
            valid = data.dropna(subset=["valid_nelbo_cond"])
            sns.lineplot(
                valid,
                x="step",
                y="valid_nelbo_cond",
                hue="model",
                hue_order=sorted(valid["model"].unique()),
                palette=colours,
                marker="o",
                ax=axes[0, 1],
            )
            axes[0, 1].set(title="validation NELBO-cond", ylabel="NELBO-cond")
        seeds = data.groupby("model")["seed"].nunique()
        band = f" (band: 95 % CI over {seeds.max()} seeds)" if seeds.max() > 1 else ""
        fig.suptitle(f"{suite} · {dataset}: training curves{band}", fontsize=10)
        stem = slug("training", suite, dataset)
        figures.append(
            save(
                fig,
                out,
                stem,
                f"Training curves — {suite}, {dataset}",
                "Loss per training step (binned mean).",
                "Training",
            )
        )
    return figures


def _bin_steps(data: pd.DataFrame) -> pd.DataFrame:
    """Average long curves into at most MAX_CURVE_POINTS step bins per run."""
    last = int(data["step"].max())
    width = max(1, int(np.ceil(last / MAX_CURVE_POINTS)))
    if width == 1:
        return data
    binned = data.assign(step=(data["step"] - 1) // width * width + width)
    return binned.groupby(["model", "seed", "run_id", "step"], as_index=False)["loss"].mean()


def _spans_decades(values: pd.Series) -> bool:
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and finite.min() > 0 and finite.max() / finite.min() > 30


# ---------------------------------------------------------------------------- ELBO
def elbo_points(results: Results, out: Path) -> list[Figure]:
    """NELBO-cond and NELBO-full per model and dataset: the mean with an error bar, dots = seeds.

    The error bar is a 95 % interval: Student's t over seeds when a model has two or more, else
    ±1.96 × the run's own standard error over its test episodes (never a bare point)."""
    metrics = results.current_metrics
    chosen = metrics["metric"].isin(["nelbo_cond", "nelbo_full"]) & (metrics["tags"] == "")
    data = metrics[(metrics["benchmark"] == "elbo") & chosen]
    data = data[np.isfinite(data["value"])]
    if data.empty:
        return []
    colours = palette(list(results.current_runs["model"]))
    figures = []
    for (suite, dataset, unit), part in data.groupby(["suite", "dataset", "unit"]):
        part = part.assign(metric=part["metric"].map(metric_label))
        order = [m for m in ("NELBO-cond", "NELBO-full") if m in set(part["metric"])]
        models = sorted(part["model"].unique())
        fig, ax = plt.subplots(figsize=(2.4 + 0.9 * len(order) * len(models), 3.8))
        width = 0.8 / len(models)
        bases = []
        for i, model in enumerate(models):
            for j, metric in enumerate(order):
                here = part[(part["model"] == model) & (part["metric"] == metric)]
                if here.empty:
                    continue
                x = j - 0.4 + width * (i + 0.5)
                mean, half, basis = _interval(here)
                bases.append(basis)
                ax.scatter(np.full(len(here), x), here["value"], color=colours[model], alpha=0.45, s=14)
                ax.errorbar(
                    x,
                    mean,
                    yerr=None if math.isnan(half) else half,
                    fmt="D",
                    color=colours[model],
                    capsize=4,
                    label=model if j == 0 else None,
                )
        ax.set_xticks(range(len(order)), order)
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set(xlabel="", ylabel=f"negative ELBO [{unit}] (lower is better)", title=f"{suite} · {dataset}")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7, loc="best")
        stem = slug("elbo", suite, dataset)
        caption = (
            "Diamonds: mean with a 95 % interval ("
            + "; ".join(sorted(set(bases)))
            + "); dots: individual seeds. NELBO-full only for models with a memory prior."
        )
        figures.append(save(fig, out, stem, f"Negative ELBO — {suite}, {dataset}", caption, "ELBO"))
    return figures


def _interval(rows: pd.DataFrame) -> tuple[float, float, str]:
    """(mean, half-width of the 95 % interval, what it is based on) of one model's seeds."""
    values = rows["value"].to_numpy(dtype=float)
    mean = float(values.mean())
    if len(values) >= 2:
        half = float(stats.t.ppf(0.975, len(values) - 1)) * float(values.std(ddof=1)) / math.sqrt(len(values))
        return mean, half, "t over seeds"
    stderr = float(rows["stderr"].iloc[0]) if rows["stderr"].notna().any() else math.nan
    return mean, Z_95 * stderr, "one seed: ±1.96 × its per-episode standard error"


def paired_forest(paired: pd.DataFrame, out: Path) -> list[Figure]:
    """Paired differences A − B with 95 % CIs (a forest plot), one panel per (suite, benchmark,
    metric, unit), each titled with its suite.

    A panel whose every difference is smaller than its own standard error (|mean| < half-width / t)
    shows nothing but noise: it is left out and named in the caption (the numbers stay in
    ``paired_differences.csv``). Differences without an interval are always shown."""
    if paired.empty:
        return []
    groups, noise = [], []
    for key, part in paired.groupby(["suite", "benchmark", "metric", "unit"], sort=True):
        if _only_noise(part):
            noise.append(f"{key[0]}/{key[1]}: {metric_label(key[2])}")
        else:
            groups.append((key, part))
    if not groups:
        return []
    heights = [0.9 + 0.38 * len(part) for _, part in groups]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(7.5, sum(heights) + 0.8),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
        layout="constrained",
    )
    for ax, ((suite, benchmark, metric, unit), part) in zip(axes[:, 0], groups):
        part = part.reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        low = (part["mean_diff"] - part["ci95_low"]).fillna(0).clip(lower=0)
        high = (part["ci95_high"] - part["mean_diff"]).fillna(0).clip(lower=0)
        ax.errorbar(part["mean_diff"], y, xerr=[low, high], fmt="o", color="black", capsize=3)
        ax.axvline(0, color="grey", lw=1, ls="--")
        labels = [f"{r.dataset}: {r.model_a} − {r.model_b}" for r in part.itertuples()]
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(-0.7, len(part) - 0.3)
        direction = "higher" if part["higher_is_better"].iloc[0] else "lower"
        ax.set_title(
            f"suite {suite} · {benchmark}: {metric_label(metric)} [{unit}] ({direction} is better)", fontsize=9
        )
        ax.set_xlabel(f"A − B [{unit}]", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("paired differences A − B on shared episodes/queries (95 % CI)", fontsize=10)
    save(fig, out, "paired_differences")
    caption = "Model A − model B on identical test episodes or queries; CI over seeds when ≥ 2 seeds, else over the paired units."
    if noise:
        caption += " Left out, every difference below its standard error: " + "; ".join(noise) + "."
    return [Figure("paired_differences", "Paired differences", caption, "Paired comparisons")]


def rank_intervals(ranks: pd.DataFrame, out: Path) -> list[Figure]:
    """Each model's rank (dot) and 95 % bootstrap rank interval (bar) per score, one panel per
    (suite, dataset, benchmark, metric); models tied for first in black, the rest in grey."""
    if ranks.empty:
        return []
    groups = list(ranks.groupby(["suite", "dataset", "benchmark", "metric"], sort=True))
    columns = min(3, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 0.6 + 2.4 * rows), squeeze=False, layout="constrained"
    )
    for ax, ((suite, dataset, _, metric), part) in zip(axes.flat, groups):
        part = part.sort_values(["rank", "model"]).reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        colours = ["black" if tied else "grey" for tied in part["tied_for_first"]]
        ax.hlines(y, part["rank_low"], part["rank_high"], colors=colours, lw=3)
        ax.scatter(part["rank"], y, color=colours, zorder=3)
        ax.set_yticks(y, part["model"], fontsize=8)
        ax.set_xticks(range(1, len(part) + 1))
        ax.set_xlim(0.5, len(part) + 0.5)
        ax.set_title(f"{suite} · {dataset}: {metric_label(metric)}", fontsize=8)
        ax.set_xlabel("rank (1 = best)", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    save(fig, out, "rank_intervals")
    caption = (
        "Rank (dot) and 95 % rank interval (bar) from a paired bootstrap over shared test episodes and seeds; "
        "black: statistically tied for first."
    )
    return [Figure("rank_intervals", "Ranks with their uncertainty", caption, "Paired comparisons")]


def _only_noise(part: pd.DataFrame) -> bool:
    """Every difference of the panel is smaller than its standard error (and each has one); the
    standard error is the CI's half-width over Student's t of the CI's basis (seeds, else pairs)."""
    half = (part["ci95_high"] - part["ci95_low"]) / 2
    n = np.where(part["n_seeds"] >= 2, part["n_seeds"], part["n_pairs"]).astype(float)
    t = stats.t.ppf(0.975, np.maximum(n - 1, 1))
    return bool(half.notna().all()) and bool((part["mean_diff"].abs() < half / t).all())


FigureFunction = Callable[[Results, Path], list[Figure]]
