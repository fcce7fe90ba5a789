"""Figures of the benchmarks beyond the ELBO: denoising, capacity, runtime, retrieval, energy, images.

Each function reads the raw files the benchmark wrote into its run directories (found by
benchmark name and the ``files`` its result lists, so a renamed file is still found by its
columns) and returns no figure when they are absent. Paper figure numbers refer to GPM (ICLR 2022).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from memorybench.reports.figures import Figure, palette, pick, save, slug
from memorybench.reports.load import Results


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


def plain_log_ticks(ax: plt.Axes) -> None:
    """Log axes labelled 4, 8, 16 and 0.5, 1, 2 instead of 2², 10⁰ …"""
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def _colours(results: Results) -> dict:
    return palette(list(results.current_runs["model"]))


# ---------------------------------------------------------------------------- denoising
def denoising_curves(results: Results, out: Path) -> list[Figure]:
    """Mean wrong pixels vs reading step per noise and level (GPM Figure 2/8), one figure per T."""
    data = benchmark_csv(results, "denoising", "step", "hamming_mean", "noise", "level")
    if data.empty:
        return []
    if "T" not in data:
        data["T"] = 0
    figures = []
    for (suite, dataset, length), part in data.groupby(["suite", "dataset", "T"]):
        models, noises = sorted(part["model"].unique()), list(dict.fromkeys(part["noise"]))
        fig, axes = plt.subplots(
            len(models), len(noises), figsize=(3.1 * len(noises), 2.3 * len(models) + 0.6), squeeze=False, sharey=True
        )
        for j, noise in enumerate(noises):
            levels = sorted(part.loc[part["noise"] == noise, "level"].unique(), key=float)
            colours = dict(zip(levels, sns.color_palette("viridis", len(levels))))
            for i, model in enumerate(models):
                ax = axes[i, j]
                here = part[(part["model"] == model) & (part["noise"] == noise)]
                for level in levels:
                    curve = here[here["level"] == level].groupby("step")["hamming_mean"].mean()
                    ax.plot(curve.index, curve.to_numpy(), marker=".", color=colours[level], label=f"{level:g}")
                ax.set_title(f"{model} · {noise}", fontsize=9)
                ax.set_xlabel("reading step" if i == len(models) - 1 else "")
                ax.set_ylabel("wrong pixels" if j == 0 else "")
                ax.grid(alpha=0.3)
            axes[0, j].legend(title="level", fontsize=7, title_fontsize=7)
        seeds = part.groupby("model")["seed"].nunique().max()
        name = f"T={length}" if length else ""
        fig.suptitle(
            f"{suite} · {dataset}: denoising error per reading step {name} (mean over {seeds} seed(s))", fontsize=10
        )
        fig.tight_layout()
        stem = slug("denoising_steps", suite, dataset, f"T{length}" if length else "")
        caption = "Mean Hamming error of the read-out per iterative-reading step (step 0: the corrupted query), per noise type and level; cf. GPM Figure 2/8."
        figures.append(
            save(fig, out, stem, f"Denoising error vs step — {dataset}, {name}".rstrip(", "), caption, "Denoising")
        )
    figures += _denoising_levels(results, data, out)
    return figures


def _denoising_levels(results: Results, data: pd.DataFrame, out: Path) -> list[Figure]:
    """Final error vs noise level, one panel per noise type, models coloured, T as line style."""
    final = data[data["step"] == data.groupby(["run_id", "T", "noise", "level"])["step"].transform("max")]
    colours = _colours(results)
    figures = []
    for (suite, dataset), part in final.groupby(["suite", "dataset"]):
        noises = list(dict.fromkeys(part["noise"]))
        fig, axes = plt.subplots(1, len(noises), figsize=(3.3 * len(noises), 3.3), squeeze=False)
        for ax, noise in zip(axes[0], noises):
            here = part[part["noise"] == noise].assign(level=lambda f: f["level"].astype(float))
            style = "T" if here["T"].nunique() > 1 else None
            sns.lineplot(
                here,
                x="level",
                y="hamming_mean",
                hue="model",
                hue_order=sorted(here["model"].unique()),
                style=style,
                palette=colours,
                marker="o",
                errorbar=("ci", 95),
                ax=ax,
                legend=ax is axes[0, -1],
            )
            ax.set(title=noise, xlabel="noise level", ylabel="final wrong pixels" if ax is axes[0, 0] else "")
            ax.grid(alpha=0.3)
        if axes[0, -1].get_legend() is not None:
            sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
        fig.suptitle(f"{suite} · {dataset}: denoising error after the last step vs noise level", fontsize=10)
        fig.tight_layout()
        stem = slug("denoising_levels", suite, dataset)
        figures.append(
            save(
                fig,
                out,
                stem,
                f"Denoising error vs noise level — {dataset}",
                "Hamming error after the last reading step (band: 95 % CI over seeds).",
                "Denoising",
            )
        )
    return figures


def denoising_success_bars(results: Results, out: Path) -> list[Figure]:
    """Success rate per noise type, level and T (metrics ``success_rate/T<T>/<noise>/<level>``)."""
    metrics = results.current_metrics
    data = metrics[(metrics["benchmark"] == "denoising") & metrics["metric"].str.startswith("success_rate/T")]
    parts = data["metric"].str.extract(r"^success_rate/T(?P<T>\d+)/(?P<noise>[^/]+)/(?P<level>[^/]+)$")
    data = pd.concat([data, parts], axis=1).dropna(subset=["noise"])
    if data.empty:
        return []
    colours = _colours(results)
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        part = part.assign(value=part["value"] * (100.0 if part["unit"].iloc[0] == "fraction" else 1.0))
        part = part.assign(T=part["T"].astype(int)).sort_values(["T", "noise"])
        part = part.assign(level=part["level"].astype(float)).sort_values("level")
        part["level"] = part["level"].map(lambda v: f"{v:g}")
        grid = sns.catplot(
            part,
            x="level",
            y="value",
            hue="model",
            hue_order=sorted(part["model"].unique()),
            col="noise",
            row="T",
            kind="bar",
            palette=colours,
            errorbar=("ci", 95),
            height=2.3,
            aspect=1.2,
            sharex=False,
        )
        grid.set_axis_labels("noise level", "success rate [%]")
        grid.set(ylim=(0, max(5.0, min(100.0, float(part["value"].max()) * 1.15))))
        grid.set_titles("T={row_name} · {col_name}")
        grid.figure.suptitle(f"{suite} · {dataset}: denoising success rate (error bars: 95 % CI over seeds)", y=1.02)
        stem = slug("denoising_success", suite, dataset)
        save(grid.figure, out, stem)
        figures.append(
            Figure(
                stem,
                f"Denoising success rate — {dataset}",
                "Share of queries with at most 1 % wrong pixels after the last step; cf. GPM Table 2.",
                "Denoising",
            )
        )
    return figures


# ---------------------------------------------------------------------------- capacity, runtime
def capacity_curves(results: Results, out: Path) -> list[Figure]:
    """Reconstruction and NELBO-cond of written items vs episode length (GPM Figure 4a), and time."""
    data = benchmark_csv(results, "capacity", "T", "reconstruction_mean|nelbo_cond_mean")
    if data.empty:
        return []
    if "status" in data:
        data = data[data["status"].fillna("done") == "done"]
    measures = [c for c in ("reconstruction_mean", "nelbo_cond_mean", "seconds") if c in data and data[c].notna().any()]
    metrics = results.current_metrics
    unit = metrics.loc[metrics["metric"].str.startswith("nelbo_cond/T"), "unit"]
    unit = str(unit.iloc[0]) if len(unit) else ""
    colours = _colours(results)
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.5), squeeze=False)
        for ax, measure in zip(axes[0], measures):
            sns.lineplot(
                part,
                x="T",
                y=measure,
                hue="model",
                hue_order=sorted(part["model"].unique()),
                palette=colours,
                marker="o",
                errorbar=("ci", 95),
                ax=ax,
                legend=ax is axes[0, -1],
            )
            ax.set_xscale("log", base=2)
            if measure == "seconds":
                ax.set(yscale="log", ylabel="seconds per length", title="evaluation time")
            else:
                ax.set(
                    ylabel=f"{measure.removesuffix('_mean')} [{unit}]",
                    title=measure.removesuffix("_mean").replace("_", " "),
                )
            ax.set_xlabel("T (items written into one memory)")
            plain_log_ticks(ax)
            ax.grid(alpha=0.3)
        fig.suptitle(f"{suite} · {dataset}: capacity (fixed memory, growing episodes)", fontsize=10)
        fig.tight_layout()
        stem = slug("capacity", suite, dataset)
        figures.append(
            save(
                fig,
                out,
                stem,
                f"Capacity — {dataset}",
                "Per-image cost of written items vs the number written; cf. GPM Figure 4a.",
                "Capacity",
            )
        )
    return figures


def runtime_curves(results: Results, out: Path) -> list[Figure]:
    """Median time per operation vs T, vs K and vs pseudo-inverse steps, log–log (GPM Figure 3b).

    Reads ``runtime.csv`` (``op, T, K, steps, device, median_ms``, optional ``series``/``status``):
    T and K panels use the grid rows, the steps panel the steps sweep; K is blank for models
    without a memory size (they appear in the T panel only).
    """
    data = benchmark_csv(results, "runtime", "median_ms", "T", "K")
    if data.empty:
        return []
    for column in ("median_ms", "T", "K", "steps"):
        if column in data:
            data[column] = pd.to_numeric(data[column], errors="coerce")
    data = data.dropna(subset=["median_ms"])
    if "status" in data:
        data = data[data["status"].fillna("done") == "done"]
    if "op" not in data:
        data["op"] = "op"
    if "device" not in data:
        data["device"] = "?"
    series = data["series"] if "series" in data else pd.Series("grid", index=data.index)
    colours = _colours(results)
    figures = []
    for (suite, device), part in data.groupby(["suite", "device"]):
        grid, sweep = part[series[part.index] != "steps"], part[series[part.index] == "steps"]
        panels = []
        if grid["T"].nunique() > 1:
            usual = grid["K"].mode()
            fixed_k = float(usual.iloc[0]) if len(usual) else None
            rows = grid[(grid["K"] == fixed_k) | grid["K"].isna()] if fixed_k is not None else grid
            panels.append(("T", rows, f"vs T (K={fixed_k:g})" if fixed_k is not None else "vs T"))
        if grid["K"].nunique() > 1:
            fixed_t = float(grid["T"].max())
            panels.append(("K", grid[grid["T"] == fixed_t], f"vs K (T={fixed_t:g})"))
        if "steps" in sweep and sweep["steps"].nunique() > 1:
            panels.append(("steps", sweep, "vs pseudo-inverse steps"))
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False)
        ops = sorted(part["op"].unique())
        dashes = dict(zip(ops, [(1, 0), (4, 2), (1, 1), (3, 1, 1, 1)] * len(ops)))
        for ax, (x, rows, title) in zip(axes[0], panels):
            for (model, op), line in rows.groupby(["model", "op"]):
                line = line.groupby(x)["median_ms"].median()
                ax.plot(line.index, line.to_numpy(), marker="o", color=colours[model], dashes=dashes[op])
            ax.set(
                xscale="log", yscale="log", xlabel=x, ylabel="median time [ms]" if ax is axes[0, 0] else "", title=title
            )
            ax.set_xticks(sorted(rows[x].dropna().unique()))
            plain_log_ticks(ax)
            ax.grid(alpha=0.3, which="both")
        handles = [Line2D([], [], color=colours[m], marker="o", label=m) for m in sorted(part["model"].unique())]
        handles += [Line2D([], [], color="black", dashes=dashes[op], label=op) for op in ops]
        axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
        fig.suptitle(f"{suite}: runtime on {device}", fontsize=10)
        fig.tight_layout()
        stem = slug("runtime", suite, device)
        caption = (
            "Median time per training iteration (train_step) and per memory write+read (write_read); cf. GPM Figure 3b."
        )
        figures.append(save(fig, out, stem, f"Runtime — {device}", caption, "Runtime"))
    return figures


# ---------------------------------------------------------------------------- retrieval, energy, generation
def retrieval_distributions(results: Results, out: Path) -> list[Figure]:
    """Cosine similarity between written codes and read-outs, per model and T (GPM Figure 6)."""
    data = benchmark_csv(results, "retrieval", "cosine")
    if data.empty:
        return []
    if "T" not in data:
        data["T"] = "?"
    colours = _colours(results)
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        fig, ax = plt.subplots(figsize=(2.5 + 1.2 * part["model"].nunique() * part["T"].nunique(), 3.6))
        sns.violinplot(
            part,
            x="T",
            y="cosine",
            hue="model",
            hue_order=sorted(part["model"].unique()),
            palette=colours,
            cut=0,
            inner="quartile",
            ax=ax,
        )
        ax.set(ylabel="cosine(written code, read-out)", xlabel="T (items written)", title=f"{suite} · {dataset}")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        stem = slug("retrieval", suite, dataset)
        figures.append(
            save(
                fig,
                out,
                stem,
                f"Retrieval similarity — {dataset}",
                "Distribution over items of the cosine between written and read-out codes (mean read); "
                "cf. GPM Figure 6.",
                "Retrieval",
            )
        )
    return figures


def energy_curves(results: Results, out: Path) -> list[Figure]:
    """Energy per iterative-reading step, one panel per model (each model defines its own energy)."""
    data = benchmark_csv(results, "energy", "step", "energy_mean|energy")
    if data.empty:
        return []
    y = pick(data, "energy_mean", "energy")
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        models = sorted(part["model"].unique())
        fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.2), squeeze=False)
        colours = _colours(results)
        for ax, model in zip(axes[0], models):
            here = part[part["model"] == model]
            sns.lineplot(here, x="step", y=y, color=colours[model], marker="o", errorbar=("ci", 95), ax=ax)
            if {"energy_q25", "energy_q75"} <= set(here.columns):
                band = here.groupby("step")[["energy_q25", "energy_q75"]].mean()
                ax.fill_between(
                    band.index, band["energy_q25"], band["energy_q75"], color=colours[model], alpha=0.15, lw=0
                )
            ax.set(title=model, xlabel="reading step", ylabel="energy" if ax is axes[0, 0] else "")
            ax.grid(alpha=0.3)
        fig.suptitle(
            f"{suite} · {dataset}: energy per reading step (line: mean; shade: inter-quartile range)", fontsize=10
        )
        fig.tight_layout()
        stem = slug("energy", suite, dataset)
        figures.append(
            save(
                fig,
                out,
                stem,
                f"Energy — {dataset}",
                "Energy of the read-out at each iterative-reading step (step 0: the corrupted query). "
                "Each model defines its own energy: compare shapes, not levels.",
                "Energy",
            )
        )
    return figures


def generation_distances(results: Results, out: Path) -> list[Figure]:
    """Nearest-neighbour distances of generated samples to the written episode vs to unwritten items."""
    data = benchmark_csv(results, "generation", "nn_distance", "nn_distance_unwritten")
    if data.empty:
        return []
    names = {"nn_distance": "written items", "nn_distance_unwritten": "unwritten items"}
    metrics = results.current_metrics
    unit = metrics.loc[(metrics["benchmark"] == "generation") & (metrics["metric"] == "nn_distance_mean"), "unit"]
    figures = []
    for (suite, dataset), part in data.groupby(["suite", "dataset"]):
        here = part.melt(id_vars=["model", "seed"], value_vars=list(names), var_name="reference", value_name="distance")
        here["reference"] = here["reference"].map(names)
        fig, ax = plt.subplots(figsize=(2.5 + 1.4 * part["model"].nunique(), 3.6))
        sns.boxplot(here, x="model", y="distance", hue="reference", ax=ax, fliersize=2)
        ax.set(
            ylabel=f"nearest-neighbour distance [{unit.iloc[0] if len(unit) else ''}]",
            xlabel="",
            title=f"{suite} · {dataset}",
        )
        stem = slug("generation_distances", suite, dataset)
        figures.append(
            save(
                fig,
                out,
                stem,
                f"Generated samples: nearest neighbours — {dataset}",
                "Distance of each sample to its nearest written item vs nearest item of another episode: "
                "samples closer to the written episode use the memory.",
                "Generation",
            )
        )
    return figures


# ---------------------------------------------------------------------------- images
def run_images(results: Results, out: Path) -> list[Figure]:
    """The image grids benchmarks saved (reconstructions, denoising trajectories, samples with nearest
    neighbours): the PNGs a run lists, of the lowest seed per (suite, model, dataset, benchmark),
    copied under figures/ with a PDF version."""
    runs = results.current_runs
    runs = runs[runs["status"] == "done"].sort_values("seed")
    found = []
    for run in runs.drop_duplicates(["suite", "model", "dataset", "benchmark"]).itertuples(index=False):
        listed = [f for f in results.payloads.get(run.run_id, {}).get("files") or [] if str(f).endswith(".png")]
        for name in listed or sorted(p.name for p in Path(run.path).glob("*.png")):
            found.append((run.suite, run.benchmark, run.dataset, Path(name).stem, run.model, run))
    figures = []
    for suite, benchmark, dataset, name, model, run in sorted(found, key=lambda item: item[:5]):
        source = Path(run.path) / f"{name}.png"
        try:
            pixels = plt.imread(source)
        except (OSError, ValueError, SyntaxError):
            continue
        stem = slug("images", suite, benchmark, dataset, name, model)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.png").write_bytes(source.read_bytes())
        height, width = pixels.shape[:2]
        fig = plt.figure(figsize=(width / 100, height / 100))
        fig.figimage(pixels, resize=True)
        fig.savefig(out / f"{stem}.pdf", dpi=100)
        plt.close(fig)
        title = f"{model} · {dataset} · {benchmark}: {name.replace('_', ' ')}"
        figures.append(Figure(stem, title, f"Saved by run {run.run_id} (seed {run.seed}).", f"Images: {benchmark}"))
    return figures


FIGURES = [
    ("denoising curves", denoising_curves),
    ("denoising success", denoising_success_bars),
    ("capacity", capacity_curves),
    ("runtime", runtime_curves),
    ("retrieval", retrieval_distributions),
    ("energy", energy_curves),
    ("generation", generation_distances),
    ("images", run_images),
]
