"""Figures (seaborn/matplotlib, Agg backend), each saved as PNG and PDF under ``figures/``.

Every figure function takes the loaded results and the output folder and returns the figures it
made — an empty list when the benchmark files it needs are absent (a partial results tree is
normal). Models keep one colour across all figures. Raw per-step files are read from the run
directories (``train_curve.csv``, the CSVs of declared figures); only current runs (:mod:`memorybench.reports.load`) count.
"""

from __future__ import annotations

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

from memorybench.reports.load import Results
from memorybench.reports.paper_tables import metric_label
from memorybench.runners.schema import CURVE_FILE

DPI = 130
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
    """NELBO-cond and NELBO-full per model and dataset: mean ± 95 % CI over seeds, dots = seeds."""
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
        fig, ax = plt.subplots(figsize=(2.4 + 0.9 * len(order) * part["model"].nunique(), 3.8))
        dodge = 0.4 if part["model"].nunique() > 1 else False  # seaborn divides by (models - 1)
        sns.stripplot(
            part,
            x="metric",
            y="value",
            hue="model",
            hue_order=sorted(part["model"].unique()),
            order=order,
            palette=colours,
            dodge=bool(dodge),
            alpha=0.45,
            legend=False,
            ax=ax,
        )
        sns.pointplot(
            part,
            x="metric",
            y="value",
            hue="model",
            hue_order=sorted(part["model"].unique()),
            order=order,
            palette=colours,
            dodge=dodge,
            errorbar=("ci", 95),
            linestyle="none",
            markers="D",
            capsize=0.08,
            ax=ax,
        )
        ax.set(xlabel="", ylabel=f"negative ELBO [{unit}] (lower is better)", title=f"{suite} · {dataset}")
        ax.grid(alpha=0.3, axis="y")
        stem = slug("elbo", suite, dataset)
        caption = "Diamonds: mean over seeds with 95 % CI; dots: individual seeds. NELBO-full only for models with a memory prior."
        figures.append(save(fig, out, stem, f"Negative ELBO — {suite}, {dataset}", caption, "ELBO"))
    return figures


def paired_forest(paired: pd.DataFrame, out: Path) -> list[Figure]:
    """Paired differences A − B with 95 % CIs (a forest plot), one panel per metric and unit."""
    if paired.empty:
        return []
    groups = list(paired.groupby(["benchmark", "metric", "unit"], sort=True))
    heights = [0.6 + 0.38 * len(part) for _, part in groups]
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(7.5, sum(heights) + 0.6), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for ax, ((benchmark, metric, unit), part) in zip(axes[:, 0], groups):
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
        ax.set_title(f"{benchmark}: {metric_label(metric)} [{unit}] ({direction} is better)", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("paired differences A − B on shared episodes/queries (95 % CI)", fontsize=10)
    fig.tight_layout()
    save(fig, out, "paired_differences")
    caption = "Model A − model B on identical test episodes or queries; CI over seeds when ≥ 2 seeds, else over the paired units."
    return [Figure("paired_differences", "Paired differences", caption, "Paired comparisons")]


FigureFunction = Callable[[Results, Path], list[Figure]]
