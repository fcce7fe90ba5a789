"""The figures benchmarks declare, drawn over every run that declared them.

A benchmark declares its charts as data: each result lists ``figures`` (name, kind, file, title,
x, y, error, facet, hue, where, logx, logy, labels, lower_is_better, integer_x; see ``Figure`` in
the benchmarks' base module). The report draws whatever the runs declared, so a plugin benchmark gets its figures
without code here, and each chart is drawn in this one place:

- ``line``: the CSV ``file`` of every current, done run declaring the figure (same suite,
  benchmark and name) is concatenated with the run's memory label, seed and dataset, and limited
  to the rows ``where`` selects. One chart per (suite, benchmark, name, dataset), one panel per
  value of ``facet``, one line per memory (and per value of ``hue``): the mean of the rows sharing
  its x (seeds, and any column the figure does not name), with a 95 % band from the ``error``
  column (standard errors, pooled as √Σse²/n) when one is declared.
- ``image``: the PNG ``file`` of the lowest seed of each (suite, memory, dataset), as it is.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from memorybench.reports.figures import Figure, palette, read_run_csv, save, slug
from memorybench.reports.load import Results

PANEL_COLUMNS = 4  # panels per row of a faceted chart
Z_95 = 1.959963984540054


def declared(results: Results, kind: str) -> list[tuple[Any, dict[str, Any]]]:
    """(run, figure declaration) of every figure of ``kind`` that current, done runs declared."""
    runs = results.current_runs
    found = []
    for run in runs[runs["status"] == "done"].sort_values("seed").itertuples(index=False):
        for figure in results.payloads.get(run.run_id, {}).get("figures") or []:
            if isinstance(figure, dict) and figure.get("kind") == kind and figure.get("name") and figure.get("file"):
                found.append((run, figure))
    return found


# ---------------------------------------------------------------------------- line charts
def line_charts(results: Results, out: Path) -> list[Figure]:
    """Every declared line chart, one per (suite, benchmark, figure name, dataset)."""
    groups: dict[tuple[str, str, str], list[tuple[Any, dict[str, Any]]]] = {}
    for run, figure in declared(results, "line"):
        groups.setdefault((run.suite, run.benchmark, figure["name"]), []).append((run, figure))
    colours = palette(list(results.current_runs["model"]))
    made = []
    for (suite, benchmark, name), items in sorted(groups.items()):
        spec = items[0][1]
        frames = [read_run_csv(run, Path(run.path) / figure["file"]) for run, figure in items]
        frames = [frame for frame in frames if frame is not None]
        data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        data = _prepared(data, spec)
        if data.empty:
            continue  # nothing to draw (e.g. no row matches ``where``): the figure is left out
        for dataset, part in data.groupby("dataset", sort=True):
            fig = _draw_line_chart(part, spec, colours)
            title = spec.get("title") or name.replace("_", " ")
            fig.suptitle(f"{suite} · {dataset}: {title}", fontsize=10)
            caption = _caption(spec, part)
            made.append(
                save(fig, out, slug(benchmark, name, suite, dataset), f"{title} — {dataset}", caption, benchmark)
            )
    return made


def _draw_line_chart(data: pd.DataFrame, spec: dict[str, Any], colours: dict) -> plt.Figure:
    """One panel per facet value, the memories overlaid (one colour each, listed once in a legend
    beside the panels); values of ``hue`` as line styles, listed (with their unit) in each panel."""
    x, y, facet, hue = (spec.get(key) or "" for key in ("x", "y", "facet", "hue"))
    data = _with_error(data, spec)
    panels = list(dict.fromkeys(data[facet])) if facet in data else [None]
    columns = min(len(panels), PANEL_COLUMNS)
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns + 1.8, 3.0 * rows + 0.6), squeeze=False, layout="constrained"
    )
    several = data["model"].nunique() > 1
    proportion = bool(spec.get("trials")) and not spec.get("error")  # y is a fraction of trials
    units = spec.get("facet_units") or {}
    for ax, panel in zip(axes.flat, panels):
        here = data if panel is None else data[data[facet] == panel]
        styles: dict[Any, str] = {}
        for (model, value), rows_here in _lines(here, hue):
            line = _pooled(rows_here, x, y, "_se" if "_se" in rows_here else "")
            colour = colours[model] if value is None or several else None
            style = _dashes(here, hue, value) if colour is not None else "-"
            label = model if value is None or several else f"{hue} {_value_text(value)}"
            (drawn,) = ax.plot(line.index, line["mean"], style, marker="o", markersize=3, color=colour, label=label)
            if value is not None and several:
                styles[value] = style
            if "se" in line and line["se"].notna().any():
                band = Z_95 * line["se"]
                low, high = line["mean"] - band, line["mean"] + band
                if proportion:  # a fraction's interval stays within [0, 1]
                    low, high = low.clip(0, 1), high.clip(0, 1)
                if len(line) == 1:  # a band around one point has no width: an error bar instead
                    yerr = [line["mean"] - low, high - line["mean"]]
                    ax.errorbar(line.index, line["mean"], yerr=yerr, color=drawn.get_color(), capsize=3)
                else:
                    ax.fill_between(line.index, low, high, color=drawn.get_color(), alpha=0.15)
        unit = units.get(str(panel), "") if panel is not None else ""
        title = "" if panel is None else (f"{panel} (levels: {unit})" if unit else f"{facet} = {panel}")
        _axes_labels(ax, spec, title, sorted(here[x].unique()))
        if proportion:
            ax.set_ylim(-0.03, 1.03)
        if styles:  # the memories are in the figure's legend; the line styles say the hue value
            handles = [
                Line2D([], [], color="grey", ls=style, label=f"{hue} {_value_text(value)}")
                for value, style in styles.items()
            ]
            ax.legend(handles=handles, fontsize=6, loc="best", handlelength=3)
        elif not several:
            ax.legend(fontsize=6, loc="best", handlelength=3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if several:
        handles = [
            Line2D([], [], color=colours[m], marker="o", markersize=3, label=m) for m in sorted(set(data["model"]))
        ]
        fig.legend(handles=handles, loc="outside right upper", fontsize=7, title="memory", title_fontsize=7)
    return fig


def _value_text(value: Any) -> str:
    """A hue value as people write it: 6.0 → 6, 0.10 → 0.1."""
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _with_error(data: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """``_se``: the standard error of y per row, from the declared ``error`` column, else from the
    ``trials`` behind a proportion (√(y(1−y)/n)); absent when the figure declares neither."""
    error, trials, y = str(spec.get("error") or ""), str(spec.get("trials") or ""), str(spec.get("y") or "")
    if error in data:
        return data.assign(_se=pd.to_numeric(data[error], errors="coerce"))
    if trials in data:
        p, n = data[y].clip(0, 1), pd.to_numeric(data[trials], errors="coerce")
        return data.assign(_se=np.sqrt(p * (1 - p) / n.where(n > 0)))
    return data


def _prepared(data: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """The rows ``where`` selects with numeric x and y (and error); no rows when a column is missing."""
    x, y, error = spec.get("x") or "", spec.get("y") or "", spec.get("error") or ""
    if data.empty or x not in data or y not in data:
        return pd.DataFrame()
    data = _where(data, spec.get("where") or {})
    for column in (x, y, error) if error in data else (x, y):
        data = data.assign(**{column: pd.to_numeric(data[column], errors="coerce")})
    return data.dropna(subset=[x, y])


def _where(data: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    """The rows whose columns equal the declared values (numbers compared as numbers)."""
    for column, value in where.items():
        if column not in data:
            return data.iloc[:0]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            data = data[pd.to_numeric(data[column], errors="coerce") == value]
        else:
            data = data[data[column].astype(str) == str(value)]
    return data


def _lines(data: pd.DataFrame, hue: str) -> list[tuple[tuple[str, Any], pd.DataFrame]]:
    """((memory, hue value or None), rows) per line of a panel."""
    if not hue or hue not in data:
        return [((model, None), part) for model, part in data.groupby("model", sort=True)]
    return [((model, value), part) for (model, value), part in data.groupby(["model", hue], sort=True)]


def _dashes(data: pd.DataFrame, hue: str, value: Any) -> str:
    """A line style per hue value when the colour already says the memory."""
    if value is None:
        return "-"
    values = sorted(data[hue].dropna().unique(), key=str)
    return ("-", "--", ":", "-.")[values.index(value) % 4] if value in values else "-"


def _pooled(rows: pd.DataFrame, x: str, y: str, error: str) -> pd.DataFrame:
    """Per x: the mean of y, and (with an error column) the standard error of that mean √Σse²/n."""
    grouped = rows.groupby(x)
    line = pd.DataFrame({"mean": grouped[y].mean()})
    if error:
        line["se"] = grouped[error].apply(lambda se: math.sqrt(float((se**2).sum())) / max(int(se.notna().sum()), 1))
    return line.sort_index()


def _axes_labels(ax: plt.Axes, spec: dict[str, Any], title: str, xs: list[float]) -> None:
    ylabel = spec.get("ylabel") or spec["y"]
    if spec.get("lower_is_better") is not None:
        ylabel += " (lower is better)" if spec["lower_is_better"] else " (higher is better)"
    ax.set(title=title, xlabel=spec.get("xlabel") or spec["x"], ylabel=ylabel)
    ax.title.set_fontsize(9)
    positive = bool(xs) and min(xs) > 0
    if spec.get("logx") and positive:
        ax.set_xscale("log", base=2 if spec.get("integer_x") else 10)
    if spec.get("logy"):
        ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # log axes labelled 4, 8, 16 and 0.5, 1, 2 instead of 2², 10⁰ …
        if axis.get_scale() == "log":
            axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    if spec.get("integer_x") and not (spec.get("logx") and positive):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(xs) == 1:  # one x value: a visible interval around it, not a zero-width axis
        at = float(xs[0])
        low, high = (at / 2, at * 2) if ax.get_xscale() == "log" else (at - 1.0, at + 1.0)
        if not spec.get("integer_x") and ax.get_xscale() != "log":
            low, high = at - max(abs(at) * 0.1, 0.5), at + max(abs(at) * 0.1, 0.5)
        ax.set_xlim(low, high)
        ax.set_xticks([at])
    elif spec.get("logx") and spec.get("integer_x") and positive:
        ax.set_xticks(xs)
    ax.grid(alpha=0.3)


def _caption(spec: dict[str, Any], data: pd.DataFrame) -> str:
    seeds = int(data.groupby("model")["seed"].nunique().max())
    parts = [f"{spec['y']} against {spec['x']} from each run's {spec['file']}; lines: mean over {seeds} seed(s)"]
    if spec.get("error"):
        parts.append(f"band: 95 % interval from the standard errors in {spec['error']}")
    elif spec.get("trials"):
        parts.append(f"band: 95 % binomial interval √(p(1−p)/n), n = {spec['trials']}")
    if spec.get("facet"):
        parts.append(f"one panel per {spec['facet']}")
    return "; ".join(parts) + "."


# ---------------------------------------------------------------------------- images
def run_images(results: Results, out: Path) -> list[Figure]:
    """Every declared image (reconstructions, denoising strips, samples) of the lowest seed per
    (suite, memory, dataset, benchmark), copied under figures/ with a PDF version."""
    chosen: dict[tuple[str, str, str, str, str], tuple[Any, dict[str, Any]]] = {}
    for run, figure in declared(results, "image"):  # sorted by seed: the first one found is kept
        chosen.setdefault((run.suite, run.benchmark, run.dataset, figure["name"], run.model), (run, figure))
    made = []
    for (suite, benchmark, dataset, name, model), (run, figure) in sorted(chosen.items()):
        source = Path(run.path) / figure["file"]
        try:
            pixels = plt.imread(source)
        except (OSError, ValueError, SyntaxError):
            continue
        stem = slug("images", suite, benchmark, dataset, name, model)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.png").write_bytes(source.read_bytes())
        height, width = pixels.shape[:2]
        fig = plt.figure(figsize=(width / 100, height / 100))
        fig.figimage(np.asarray(pixels), resize=True)
        fig.savefig(out / f"{stem}.pdf", dpi=100)
        plt.close(fig)
        title = f"{model} · {dataset} · {benchmark}: {figure.get('title') or name.replace('_', ' ')}"
        made.append(Figure(stem, title, f"Saved by run {run.run_id} (seed {run.seed}).", f"Images: {benchmark}"))
    return made


FIGURES = [("declared line charts", line_charts), ("declared images", run_images)]
