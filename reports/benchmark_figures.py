"""Figures of the benchmarks beyond the ELBO: denoising, capacity, runtime, retrieval, energy, images.

Each function reads the raw files the benchmark wrote into its run directories (found by
benchmark name and the ``files`` its result lists, so a renamed file is still found by its
columns) and returns no figure when they are absent. Paper figure numbers refer to GPM (ICLR 2022).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from reports.figures import Figure, palette, pick, save, slug
from reports.load import Results


def benchmark_csv(results: Results, benchmark: str, *required: str) -> pd.DataFrame:
    """Rows of every CSV that current, done runs of ``benchmark`` list and that has all ``required`` columns."""
    frames = []
    runs = results.current_runs
    runs = runs[(runs["status"] == "done") & (runs["benchmark"] == benchmark)]
    for run in runs.itertuples(index=False):
        listed = [f for f in results.payloads.get(run.run_id, {}).get("files") or [] if str(f).endswith(".csv")]
        for name in listed or sorted(p.name for p in Path(run.path).glob("*.csv") if p.name != "train_curve.csv"):
            try:
                frame = pd.read_csv(Path(run.path) / name)
            except (OSError, ValueError, pd.errors.ParserError):
                continue
            if frame.empty or not all(any(c in frame for c in options.split("|")) for options in required):
                continue
            for column in ("suite", "model", "dataset", "seed", "run_id"):
                frame[column] = getattr(run, column)
            frames.append(frame)
            break  # one matching file per run
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _colours(results: Results) -> dict:
    return palette(list(results.current_runs["model"]))


# ---------------------------------------------------------------------------- denoising
def denoising_curves(results: Results, out: Path) -> list[Figure]:
    """Hamming error vs reading step (Figure 2/8) and final error vs noise level."""
    data = benchmark_csv(results, "denoising", "step", "hamming|hamming_error|hamming_fraction", "noise")
    if data.empty:
        return []
    y = pick(data, "hamming", "hamming_error", "hamming_fraction")
    level = pick(data, "level", "noise_level")
    length = pick(data, "T", "episode_length")
    colours = _colours(results)
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        lengths = sorted(part[length].unique()) if length else [None]
        for t in lengths:
            here = part[part[length] == t] if length else part
            grid = sns.relplot(
                here, x="step", y=y, hue=level, col="noise", row="model", kind="line", palette="viridis",
                errorbar=None, height=2.6, aspect=1.2, facet_kws={"sharey": False},
            )  # fmt: skip
            grid.set_axis_labels("reading step", f"{y}")
            grid.figure.suptitle(f"{suite} · {dataset}: denoising error per step" + (f" (T={t})" if t else ""), y=1.02)
            stem = slug("denoising_steps", suite, dataset, f"T{t}" if t else "")
            save(grid.figure, out, stem)
            figures.append(Figure(stem, f"Denoising error vs step — {dataset}" + (f", T={t}" if t else ""),
                                  "Mean Hamming error of the read-out per iterative-reading step, per noise type "
                                  "(columns), model (rows) and noise level (colour); cf. GPM Figure 2/8.",
                                  "Denoising"))  # fmt: skip
        final = part.loc[part.groupby(["run_id", "noise", *([level] if level else []), *([length] if length else [])])["step"].transform("max") == part["step"]]
        if level:
            grid = sns.relplot(
                final, x=level, y=y, hue="model", col="noise", style=length, kind="line", marker="o",
                palette=colours, errorbar=("ci", 95), height=2.8, aspect=1.1, facet_kws={"sharex": False, "sharey": False},
            )  # fmt: skip
            grid.figure.suptitle(f"{suite} · {dataset}: final denoising error vs noise level", y=1.03)
            stem = slug("denoising_levels", suite, dataset)
            save(grid.figure, out, stem)
            figures.append(Figure(stem, f"Denoising error vs noise level — {dataset}",
                                  "Hamming error after the last reading step.", "Denoising"))  # fmt: skip
    return figures


def denoising_success_bars(results: Results, out: Path) -> list[Figure]:
    """Success rate per noise type and level (metrics ``success_rate/<noise>/<level>``)."""
    metrics = results.current_metrics
    data = metrics[(metrics["benchmark"] == "denoising") & metrics["metric"].str.startswith("success_rate/")].copy()
    if data.empty:
        return []
    parts = data["metric"].str.split("/", expand=True)
    if parts.shape[1] < 3:
        return []
    data["noise"], data["level"] = parts[1], parts[2]
    colours = _colours(results)
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        scale = 100.0 if part["value"].max() <= 1.0 else 1.0
        part = part.assign(value=part["value"] * scale)
        grid = sns.catplot(part, x="level", y="value", hue="model", col="noise", kind="bar", palette=colours,
                           errorbar=("ci", 95), height=2.8, aspect=1.1, sharex=False)  # fmt: skip
        grid.set_axis_labels("noise level", "success rate [%]")
        grid.figure.suptitle(f"{suite} · {dataset}: denoising success rate (error bars: 95 % CI over seeds)", y=1.03)
        stem = slug("denoising_success", suite, dataset)
        save(grid.figure, out, stem)
        figures.append(Figure(stem, f"Denoising success rate — {dataset}", "Success = at most 1 % wrong pixels.", "Denoising"))
    return figures


# ---------------------------------------------------------------------------- capacity, runtime
def capacity_curves(results: Results, out: Path) -> list[Figure]:
    """Capacity: a quality measure vs the number of stored items (GPM Figure 4a)."""
    data = benchmark_csv(results, "capacity", "T|length|items|episode_length")
    if data.empty:
        return []
    x = pick(data, "T", "length", "items", "episode_length")
    measures = [c for c in data.select_dtypes("number").columns if c not in {x, "seed", "episode", "step"}]
    if not measures:
        return []
    colours = _colours(results)
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.6), squeeze=False)
        for ax, measure in zip(axes[0], measures):
            sns.lineplot(part, x=x, y=measure, hue="model", palette=colours, marker="o", errorbar=("ci", 95), ax=ax)
            if part[x].min() > 0 and part[x].max() / part[x].min() >= 8:
                ax.set_xscale("log", base=2)
            ax.set(xlabel=f"{x} (items written)", title=measure)
        fig.suptitle(f"{suite} · {dataset}: capacity", fontsize=10)
        stem = slug("capacity", suite, dataset)
        save(fig, out, stem)
        figures.append(Figure(stem, f"Capacity — {dataset}", "Quality vs number of stored items; cf. GPM Figure 4a.", "Capacity"))
    return figures


def runtime_curves(results: Results, out: Path) -> list[Figure]:
    """Median time per operation vs T and vs K, log–log (GPM Figure 3b)."""
    data = benchmark_csv(results, "runtime", "median_ms", "T", "K")
    if data.empty:
        return []
    colours = _colours(results)
    op = pick(data, "op")
    figures = []
    for (suite, device), part in data.groupby(["suite", pick(data, "device") or "suite"]):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for ax, (x, fixed) in zip(axes, (("T", "K"), ("K", "T"))):
            usual = part[fixed].mode().iloc[0]
            here = part[part[fixed] == usual]
            sns.lineplot(here, x=x, y="median_ms", hue="model", style=op, palette=colours, marker="o", errorbar=None, ax=ax)
            ax.set(xscale="log", yscale="log", xlabel=f"{x}", ylabel="median time [ms]", title=f"vs {x} ({fixed}={usual})")
        fig.suptitle(f"{suite}: runtime on {device}", fontsize=10)
        stem = slug("runtime", suite, device)
        save(fig, out, stem)
        figures.append(Figure(stem, f"Runtime — {device}", "Median time per operation; cf. GPM Figure 3b.", "Runtime"))
    return figures


# ---------------------------------------------------------------------------- retrieval, energy
def retrieval_distributions(results: Results, out: Path) -> list[Figure]:
    """Cosine similarity between written and read-out codes (GPM Figure 6)."""
    data = benchmark_csv(results, "retrieval", "cosine|similarity")
    if data.empty:
        return []
    y = pick(data, "cosine", "similarity")
    colours = _colours(results)
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        fig, ax = plt.subplots(figsize=(2 + 1.3 * part["model"].nunique(), 3.8))
        sns.violinplot(part, x="model", y=y, hue="model", palette=colours, cut=0, inner="quartile", legend=False, ax=ax)
        ax.set(ylabel="cosine(written code, read-out)", xlabel="", title=f"{suite} · {dataset}")
        stem = slug("retrieval", suite, dataset)
        save(fig, out, stem)
        figures.append(Figure(stem, f"Retrieval similarity — {dataset}", "Distribution over items; cf. GPM Figure 6.", "Retrieval"))
    return figures


def energy_curves(results: Results, out: Path) -> list[Figure]:
    """Energy of the read-out per iterative-reading step."""
    data = benchmark_csv(results, "energy", "step", "energy")
    if data.empty:
        return []
    colours = _colours(results)
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        fig, ax = plt.subplots(figsize=(6, 3.8))
        sns.lineplot(part, x="step", y="energy", hue="model", palette=colours, errorbar=("ci", 95), ax=ax)
        values = part["energy"][np.isfinite(part["energy"])]
        if len(values) and values.min() > 0 and values.max() / values.min() > 30:
            ax.set_yscale("log")
        ax.set(xlabel="reading step", title=f"{suite} · {dataset}: energy per reading step")
        stem = slug("energy", suite, dataset)
        save(fig, out, stem)
        figures.append(Figure(stem, f"Energy — {dataset}", "Mean energy (band: 95 % CI) per reading step.", "Energy"))
    return figures


FIGURES = [
    ("denoising curves", denoising_curves),
    ("denoising success", denoising_success_bars),
    ("capacity", capacity_curves),
    ("runtime", runtime_curves),
    ("retrieval", retrieval_distributions),
    ("energy", energy_curves),
]
