"""Pictures the benchmarks save next to their CSVs: image strips and grids, histograms.

Matplotlib's object-oriented API on the Agg canvas (no pyplot, no global backend switch), so
figures can be drawn from any thread or worker. Image grids are composed into one array and drawn
with a single ``imshow`` (fast even for hundreds of cells). Every PNG is written atomically.
Line charts are never drawn here: a benchmark declares them (:class:`~memorybench.benchmarks.base.Figure`)
and ``reports/`` draws them from the CSVs; these are the per-run pictures.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from memorybench.benchmarks.common.artifacts import atomic_write_bytes

PAD = 2  # pixels between grid cells
BACKGROUND = 0.55  # grey between cells, distinct from black and white pixels


def save_figure(figure: Figure, path: str | Path, dpi: int = 110) -> None:
    """Render ``figure`` to PNG and write it atomically."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def compose_grid(images: Tensor, pad: int = PAD) -> np.ndarray:
    """Images ``[R, S, C, H, W]`` in [0, 1] -> one RGB array ``[R·(H+pad)+pad, S·(W+pad)+pad, 3]``."""
    rows, columns, channels, height, width = images.shape
    cells = images.detach().float().clamp(0, 1).cpu()
    if channels == 1:
        cells = cells.expand(-1, -1, 3, -1, -1)
    elif channels != 3:
        raise ValueError(f"can only draw 1- or 3-channel images, got {channels} channels")
    canvas = torch.full((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), BACKGROUND)
    padded = torch.nn.functional.pad(cells.permute(0, 1, 3, 4, 2), (0, 0, 0, pad, 0, pad), value=BACKGROUND)
    body = padded.permute(0, 2, 1, 3, 4).reshape(rows * (height + pad), columns * (width + pad), 3)
    canvas[pad:, pad:] = body
    return canvas.numpy()


def image_grid(
    images: Tensor,
    path: str | Path,
    *,
    title: str = "",
    row_labels: Sequence[str] = (),
    column_labels: Sequence[str] = (),
    cell_text: Sequence[Sequence[str]] = (),
    cell_inches: float = 0.55,
) -> None:
    """Save a grid of images ``[R, S, C, H, W]`` with optional row/column labels and per-cell text."""
    rows, columns, _, height, width = images.shape
    canvas = compose_grid(images)
    figure = Figure(figsize=(max(2.5, columns * cell_inches + 1.2), max(1.5, rows * cell_inches + 0.8)))
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(canvas, interpolation="nearest")
    step_x, step_y = width + PAD, height + PAD
    axes.set_xticks([PAD + c * step_x + width / 2 - 0.5 for c in range(len(column_labels))])
    axes.set_xticklabels(list(column_labels), fontsize=7, rotation=0)
    axes.xaxis.tick_top()
    axes.set_yticks([PAD + r * step_y + height / 2 - 0.5 for r in range(len(row_labels))])
    axes.set_yticklabels(list(row_labels), fontsize=7)
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    for r, texts in enumerate(cell_text):
        for c, text in enumerate(texts):
            if text:
                x, y = PAD + c * step_x + width / 2, PAD + r * step_y + height - 1
                box = {"facecolor": "black", "alpha": 0.6, "pad": 0.6, "linewidth": 0}
                axes.text(x, y, text, color="yellow", fontsize=5, ha="center", va="bottom", bbox=box)
    if title:
        axes.set_title(title, fontsize=9, pad=14 if column_labels else 4)
    save_figure(figure, path)


def trajectory_strip(images: Tensor, errors: Tensor, path: str | Path, *, title: str) -> None:
    """Save iterative-reading trajectories: ``images`` ``[R, 1+S+1, C, H, W]`` (the clean item, the
    query, then every step) with each image's wrong pixels ``errors`` ``[R, S+1]`` printed under it."""
    steps = images.shape[1] - 2
    image_grid(
        images,
        path,
        title=title,
        column_labels=["clean", "query", *(str(s) for s in range(1, steps + 1))],
        cell_text=[["", *(str(int(e)) for e in row)] for row in errors],
    )


def histogram_figure(
    series: Mapping[str, Tensor | Sequence[float]],
    path: str | Path,
    *,
    xlabel: str,
    title: str = "",
    bins: int = 40,
) -> None:
    """Save overlaid histograms (shared bins) of one or more value sets."""
    arrays = {
        label: np.asarray(torch.as_tensor(values, dtype=torch.float64).flatten()) for label, values in series.items()
    }
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()] or [np.zeros(1)])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    figure = Figure(figsize=(5.0, 3.2))
    axes = figure.add_subplot(1, 1, 1)
    for label, values in arrays.items():
        axes.hist(values[np.isfinite(values)], bins=edges.tolist(), alpha=0.5, label=f"{label} (n={values.size})")
    axes.set_xlabel(xlabel, fontsize=8)
    axes.set_ylabel("count", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7)
    if title:
        axes.set_title(title, fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


__all__ = ["compose_grid", "histogram_figure", "image_grid", "save_figure", "trajectory_strip"]
