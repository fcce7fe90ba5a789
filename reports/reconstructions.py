"""Reconstruction grids rebuilt from the runs' checkpoints: one test episode, every model's read-out.

No benchmark saves reconstructions, so the report makes them from what is on disk: for each
(suite, dataset), the ELBO run of the lowest seed of every model is restored from its
``checkpoint.pt`` (state dicts only, loaded with ``weights_only=True``) and its resolved spec, the
first fixed test episode (the ELBO benchmark's ``episode_seed``; the same items for every model,
since the seeded permutation does not depend on T) is written into memory and read back with the
model's deterministic ``read``. Rows: the data, then each model's expected image. A run whose
data or checkpoint is unavailable is left out, never an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from memorybench.reports.figures import Figure, save, slug
from memorybench.reports.load import Results

ITEMS = 8  # images per row


def reconstruction_grids(results: Results, out: Path, notes: list[str] | None = None) -> list[Figure]:
    """One grid per (suite, dataset); why a model was left out is appended to ``notes``."""
    runs = results.current_runs
    runs = runs[(runs["status"] == "done") & (runs["benchmark"] == "elbo")]
    runs = runs[[_weights_path(Path(p)) is not None for p in runs["path"]]]
    if runs.empty:
        return []
    import torch

    figures = []
    cache: dict[str, Any] = {}
    for (suite, dataset), group in runs.sort_values("seed").groupby(["suite", "dataset"]):
        rows: list[tuple[str, torch.Tensor]] = []
        for run in group.drop_duplicates("model").sort_values("model").itertuples(index=False):
            try:
                data, recon = _reconstruct(Path(run.path), cache)
            except Exception as error:  # missing data, a checkpoint of older code: leave the model out
                if notes is not None:
                    reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
                    notes.append(f"reconstructions of {run.run_id}: {reason}")
                continue
            if not rows:
                rows.append(("data", data))
            rows.append((f"{run.model} (seed {run.seed})", recon))
        if len(rows) < 2:
            continue
        width = min(len(images) for _, images in rows)
        stem = slug("reconstructions", suite, dataset)
        _draw([(label, images[:width]) for label, images in rows], out, stem, f"{suite} · {dataset}")
        caption = (
            "First fixed test episode: the data (top) and each model's expected read-out with that episode written "
            "into its memory; restored from the ELBO runs' checkpoints."
        )
        figures.append(Figure(stem, f"Reconstructions — {suite}, {dataset}", caption, "Images: reconstructions"))
    return figures


def _weights_path(run_dir: Path) -> Path | None:
    """The evaluated model's weights: its training run's snapshot of the evaluated step (results
    of older versions kept a ``checkpoint.pt`` in the run directory itself)."""
    if (run_dir / "checkpoint.pt").is_file():
        return run_dir / "checkpoint.pt"
    try:
        result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        path = run_dir.parent / "_training" / str(result["training_run"]) / f"model-step{int(result['train_steps'])}.pt"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return path if path.is_file() else None


def _reconstruct(run_dir: Path, cache: dict[str, Any]) -> tuple[Any, Any]:
    """(data ``[n, C, H, W]``, read-out means ``[n, C, H, W]``) of the run's first test episode."""
    import torch

    import memorybench.benchmarks.datasets as datasets
    from memorybench import memories
    from memorybench.benchmarks.episodes import fixed_episodes
    from memorybench.runners.suite import RunSpec

    spec = RunSpec.from_dict(json.loads((run_dir / "spec.json").read_text()))
    key = json.dumps([spec.dataset, spec.data_root, spec.dataset_config], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = datasets.create(spec.dataset, spec.data_root, **spec.dataset_config)
    dataset = cache[key]
    model = memories.create(
        spec.memory_class, image_shape=dataset.image_shape, likelihood=dataset.likelihood, **spec.memory_config
    )
    weights = _weights_path(run_dir)
    if weights is None:
        raise FileNotFoundError("no saved weights for this run")
    try:
        saved = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # damaged weights: say so without torch's advice to unpickle them
        from memorybench.benchmarks.trainer import describe_load_error

        raise ValueError(f"{weights}: unreadable weights ({describe_load_error(error)})") from None
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError:
        raise ValueError("the checkpoint does not fit the current model code (written by another version?)") from None
    model.eval()
    split = dataset.split("test")
    seed = int(spec.benchmark_config.get("episode_seed", 1234))
    episode = fixed_episodes(split, model.config.episode_length, seed, max_episodes=1)
    images = split.images(episode, torch.Generator().manual_seed(seed))  # [1, T, C, H, W]
    torch.manual_seed(0)  # models with read noise draw it reproducibly
    with torch.no_grad():
        recon = model.read(images, model.write(images)).mean
    count = min(ITEMS, images.shape[1])
    return images[0, :count], recon[0, :count].clamp(0, 1)


def _draw(rows: list[tuple[str, Any]], out: Path, stem: str, title: str) -> None:
    import torch

    from memorybench.benchmarks.figures import compose_grid

    grid = compose_grid(torch.stack([images for _, images in rows]))  # [R, n, C, H, W] -> RGB array
    height = rows[0][1].shape[-2] + 2
    fig, ax = plt.subplots(figsize=(0.75 * rows[0][1].shape[0] + 1.6, 0.75 * len(rows) + 0.5))
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks([2 + i * height + height / 2 - 1 for i in range(len(rows))], [label for label, _ in rows], fontsize=8)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=9)
    save(fig, out, stem)
