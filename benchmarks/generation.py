"""Generation benchmark: samples from a written memory, compared with what was written.

GPM §3.3, Figures 3a and 4c: write an episode, draw samples from the
memory's prior over read weights/keys (``model.sample``), refine them by ``steps`` iterative
reads, and put each sample next to its nearest neighbour in the written episode — Hamming
distance for binary data, Euclidean otherwise — so that copying the episode and producing novel
samples can be told apart. Two references make the distances readable: the nearest neighbour in
an equally long *unwritten* episode of the same split (a memory that conditions on what it stores
lands closer to the written than to the unwritten items; a memoryless model lands equally close),
and each written item's nearest *other* written item (how far apart distinct items are).

Metrics: ``nn_distance_mean``/``nn_distance_median`` (to the written episode),
``nn_distance_unwritten_mean``, ``nn_distance_ratio`` (written / unwritten; < 1: samples are
specific to the written episode), ``within_episode_distance_mean`` (the reference spread),
``copy_rate`` (samples within ⌊copy_fraction·pixels⌋ Hamming — or RMS error ≤ copy_fraction for
8-bit data — of a written item), and ``nn_distance_mean``/``copy_rate`` before refinement, tagged
``{"refinement_steps": 0}`` (the untagged ones are after ``steps`` refinement steps). Means carry
their standard error, clustered by written episode (its samples share one memory).
Distances are descriptive: ``higher_is_better`` is False for them (closer to the written items)
and for ``copy_rate`` (novel samples are the point of generation). Files:
``generation_samples.csv`` (every sample's nearest neighbours and distances),
``generation_samples.png`` (samples beside their nearest written item, distance printed) and
``generation_distances.png`` (the three distance distributions), both declared as image figures
(``samples``, ``distances``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from memorybench.benchmarks.base import (
    Benchmark,
    BenchmarkConfig,
    BenchmarkContext,
    BenchmarkOutcome,
    Figure,
    register_benchmark,
    require_split,
)
from memorybench.benchmarks.common.artifacts import atomic_write_csv
from memorybench.benchmarks.common.episodes import fixed_episodes
from memorybench.benchmarks.common.images import histogram_figure, image_grid
from memorybench.benchmarks.common.metrics import clustered_stderr, nearest, quantiles, success_threshold
from memorybench.memories.configuration import require
from memorybench.memories.protocol import MemoryModel

SAMPLES_FILE = "generation_samples.csv"
GRID_FILE = "generation_samples.png"
DISTANCES_FILE = "generation_distances.png"


@dataclass(frozen=True, kw_only=True)
class GenerationConfig(BenchmarkConfig):
    """Generation settings."""

    split: str = "test"  # split the written episodes come from
    episode_length: int = 0  # T written (0: the model's episode_length)
    max_episodes: int = 16  # written episodes (at least 2, so each has an unwritten reference)
    samples: int = 64  # samples per written episode (docs/protocol.md)
    steps: int = 5  # iterative-reading refinement steps after sampling
    copy_fraction: float = 0.01  # "copy": within ⌊fraction·pixels⌋ Hamming (binary) or RMS ≤ fraction (8-bit)
    grid_episodes: int = 2  # episodes drawn in generation_samples.png
    grid_samples: int = 8  # samples per drawn episode (each beside its nearest neighbour)

    def validate(self) -> None:
        super().validate()
        require_split(self.split)
        require(self.episode_length >= 0, "episode_length", f"must be >= 0, got {self.episode_length}")
        require(
            self.max_episodes == 0 or self.max_episodes >= 2,
            "max_episodes",
            f"must be 0 or >= 2, got {self.max_episodes}",
        )
        require(self.samples > 0, "samples", f"must be positive, got {self.samples}")
        require(self.steps >= 0, "steps", f"must be >= 0, got {self.steps}")
        require(0.0 <= self.copy_fraction < 1.0, "copy_fraction", f"must lie in [0, 1), got {self.copy_fraction}")
        require(self.grid_episodes >= 0, "grid_episodes", f"must be >= 0, got {self.grid_episodes}")
        require(self.grid_samples >= 0, "grid_samples", f"must be >= 0, got {self.grid_samples}")


@register_benchmark("generation")
class GenerationBenchmark(Benchmark):
    """Samples from a written memory beside their nearest written item; nearest-neighbour distance distribution."""

    config_class = GenerationConfig
    config: GenerationConfig

    def not_applicable(self, model_class: type[MemoryModel]) -> str | None:
        if not model_class.supports_generation:
            return "not applicable: the model does not support generation (supports_generation is False)"
        return None

    @torch.no_grad()
    def run(self, context: BenchmarkContext) -> BenchmarkOutcome:
        model, config = context.model.eval(), self.config
        torch.manual_seed(context.seed)
        split = context.dataset.split(config.split)
        binary = model.binary_data
        length = config.episode_length or model.config.episode_length
        episodes = fixed_episodes(split, length, config.episode_seed, config.max_episodes)
        if len(episodes) < 2:
            raise ValueError(f"generation: the {config.split} split holds fewer than two episodes of length {length}")
        unwritten = episodes.roll(-1, dims=0)  # episode e+1 is episode e's unwritten reference
        pieces: dict[str, list[Tensor]] = {}
        grid: list[Tensor] = []
        grid_distances: list[Tensor] = []
        for chunk, other in zip(episodes.split(config.batch_episodes), unwritten.split(config.batch_episodes)):
            written = split.images(chunk).to(context.device)
            reference = split.images(other).to(context.device)
            state = model.write(written)
            raw = model.sample(state, config.samples, steps=0)
            refined = model.refine_samples(raw, state, config.steps) if config.steps else raw
            for name, value in self._distances(refined, written, reference, binary).items():
                pieces.setdefault(name, []).append(value)
            pieces.setdefault("step0", []).append(nearest(raw, written, binary)[0].cpu())
            if sum(g.shape[0] for g in grid) < config.grid_episodes:
                rows_drawn, distances_drawn = self._grid_rows(refined, written, binary)
                grid.append(rows_drawn)
                grid_distances.append(distances_drawn)
        values = {name: torch.cat(parts) for name, parts in pieces.items()}  # [E, n] (within: [E, T])

        pixels = math.prod(model.image_shape)
        copy_limit = (
            success_threshold(pixels, config.copy_fraction) if binary else config.copy_fraction * math.sqrt(pixels)
        )
        outcome = BenchmarkOutcome()
        unit = "pixels (Hamming)" if binary else "L2"
        d, d_unwritten, d_within, d_raw = values["nn"], values["nn_unwritten"], values["within"], values["step0"]
        spread = quantiles(d, (0.05, 0.5, 0.95))
        episode_ids = torch.arange(d.shape[0]).unsqueeze(1).expand_as(d)  # samples of one episode share a memory

        def add(name: str, values: Tensor, metric_unit: str, descriptive: bool = False, **tags: Any) -> None:
            stderr = clustered_stderr(values, episode_ids)
            outcome.add(name, float(values.mean()), metric_unit, stderr=stderr, tags=tags, descriptive=descriptive)

        # Ranked (lower is better): how close samples come to what was written, absolutely and
        # relative to unwritten items. Descriptive (no direction, never ranked): the spread of those
        # distances, the reference distances to unwritten items and between written items (the
        # data's own scale), and the copy rate (copying is neither the goal nor always a failure).
        add("nn_distance_mean", d, unit)
        for name, q in (("nn_distance_median", 0.5), ("nn_distance_p05", 0.05), ("nn_distance_p95", 0.95)):
            outcome.add(name, spread[q], unit, descriptive=True)
        add("nn_distance_unwritten_mean", d_unwritten, unit, descriptive=True)
        outcome.add("nn_distance_ratio", float(d.mean() / d_unwritten.mean().clamp(min=1e-12)), "ratio")
        outcome.add("within_episode_distance_mean", float(d_within.mean()), unit, descriptive=True)
        add("copy_rate", (d <= copy_limit).double(), "fraction", descriptive=True)
        add("nn_distance_mean", d_raw, unit, refinement_steps=0)
        add("copy_rate", (d_raw <= copy_limit).double(), "fraction", descriptive=True, refinement_steps=0)

        rows: list[dict[str, Any]] = []
        for e in range(d.shape[0]):
            for s in range(d.shape[1]):
                rows.append(
                    {
                        "episode": e,
                        "sample": s,
                        "nn_index": int(values["nn_index"][e, s]),
                        "nn_distance": float(d[e, s]),
                        "nn_distance_unwritten": float(d_unwritten[e, s]),
                        "nn_distance_step0": float(d_raw[e, s]),
                        "copy": bool(d[e, s] <= copy_limit),
                    }
                )
        atomic_write_csv(context.run_dir / SAMPLES_FILE, rows)
        outcome.files.append(SAMPLES_FILE)
        histogram_figure(
            {"sample to written": d, "sample to unwritten": d_unwritten, "written to other written": d_within},
            context.run_dir / DISTANCES_FILE,
            xlabel=f"nearest-neighbour distance [{unit}]",
            title=f"{model.registry_name}: generation, T={length}, {config.steps} refinement steps",
        )
        outcome.files.append(DISTANCES_FILE)
        outcome.figures.append(
            Figure(name="distances", kind="image", file=DISTANCES_FILE, title="Nearest-neighbour distances of samples")
        )
        if grid and config.grid_samples:
            drawn = config.grid_episodes
            self._save_grid(context, torch.cat(grid)[:drawn], torch.cat(grid_distances)[:drawn], length)
            outcome.files.append(GRID_FILE)
            outcome.figures.append(
                Figure(name="samples", kind="image", file=GRID_FILE, title="Samples beside their nearest written item")
            )
        outcome.protocol = {
            "split": config.split,
            "episode_length": length,
            "episodes": len(episodes),
            "samples_per_episode": config.samples,
            "episode_seed": config.episode_seed,
            "sampling": "model.sample(state, n, steps=0): the memory's prior over read weights/keys, decoded",
            "refinement": f"{config.steps} iterative reads (model.refine_samples; binary data binarized at 0.5)",
            "distance": "Hamming" if binary else "Euclidean",
            "unwritten_reference": "the next fixed episode of the split (never written to this memory)",
            "copy": f"distance <= {copy_limit:g}",
        }
        return outcome

    @staticmethod
    def _distances(samples: Tensor, written: Tensor, reference: Tensor, binary: bool) -> dict[str, Tensor]:
        distance, index = nearest(samples, written, binary)
        unwritten, _ = nearest(samples, reference, binary)
        within, _ = nearest(written, written, binary, exclude_self=True)
        return {"nn": distance.cpu(), "nn_index": index.cpu(), "nn_unwritten": unwritten.cpu(), "within": within.cpu()}

    def _grid_rows(self, samples: Tensor, written: Tensor, binary: bool) -> tuple[Tensor, Tensor]:
        """``[b, 2·n, C, H, W]``: each drawn sample followed by its nearest written item; and the
        distances ``[b, n]``."""
        n = min(self.config.grid_samples, samples.shape[1])
        chosen = samples[:, :n]
        distance, index = nearest(chosen, written, binary)
        neighbours = torch.gather(written, 1, index.view(*index.shape, 1, 1, 1).expand(-1, -1, *written.shape[2:]))
        return torch.stack([chosen, neighbours], dim=2).flatten(1, 2).cpu(), distance.cpu()

    def _save_grid(self, context: BenchmarkContext, rows: Tensor, distances: Tensor, length: int) -> None:
        pairs = rows.shape[1] // 2
        texts = [[text for d in row for text in ("", f"d={float(d):g}")] for row in distances]
        image_grid(
            rows,
            context.run_dir / GRID_FILE,
            title=f"{context.model.registry_name}: samples (left) beside their nearest written item (right), T={length}",
            column_labels=[label for _ in range(pairs) for label in ("sample", "nearest")],
            row_labels=[f"episode {e}" for e in range(rows.shape[0])],
            cell_text=texts,
        )
