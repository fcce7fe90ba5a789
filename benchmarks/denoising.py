"""Denoising benchmark: retrieve written items from corrupted queries by iterative reading.

Protocol (GPM §3.2, Table 2, Figures 2, 7, 8; MODELS.md §6.7, §8.2–8.3): for every episode
length T, fixed test episodes (a seeded permutation of the split cut into chunks of T, the same
for every model) are written clean; every item is then queried with a corrupted copy and the
model reads iteratively for ``steps`` steps, the memory never being updated while reading. Each
step's output — the decoder mean, binarized at ``threshold`` for binary data — is the next query
(the protocol's ``iterative_read``). Errors are counted against the clean item: Hamming distance
for binary data (pixels with |error| > ``pixel_tolerance`` for 8-bit data). A query succeeds when
at most ⌊``success_fraction``·pixels⌋ pixels are wrong after the last step (7 of 784 at 1 %).

The corruptions (:mod:`benchmarks.corruptions`) are seeded per (T, noise, level) from
``episode_seed``, so every model of a suite answers exactly the same queries (paired results).
One memory is written per episode batch and all corrupted variants are read from it.

Metric names (``result.json``): ``success_rate`` and ``hamming_final`` average every
(T, noise, level) cell with equal weight; ``success_rate/<noise>/<level>`` and
``hamming_final/<noise>/<level>`` average a noise setting over the T values; the per-cell values
are ``success_rate/T<T>/<noise>/<level>`` (likewise ``hamming_final``), and ``success_rate/T<T>``
averages the cells of one T. Levels are written with ``%g``: ``salt_pepper/0.15``, ``block/12``,
``rotation/30``, ``gaussian/0.5``.

Files: ``denoising_steps.csv`` (per T, noise, level and step 0..steps — step 0 is the corrupted
query — mean and standard error of the wrong pixels, success rate, mean pixels changed by the
step), ``denoising_queries.csv`` (per query: corrupted and final errors, for paired tests),
``denoising_<noise>.png`` image strips (clean, corrupted, every step, errors printed under each
image) and ``denoising_curves.png`` (mean error per step, largest T).

A model without a memory (its ``write`` returns no usable state) still runs: iterative reading
then is its own encoder/decoder fixed-point iteration, a memoryless baseline for the same queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from benchmarks.artifacts import atomic_write_csv
from benchmarks.base import Benchmark, BenchmarkConfig, BenchmarkContext, BenchmarkOutcome, register_benchmark
from benchmarks.corruptions import CORRUPTIONS, corrupt, corruption_seed, format_level
from benchmarks.episodes import fixed_episodes
from benchmarks.figures import Panel, image_grid, line_figure
from benchmarks.metrics import mean_and_stderr, success, success_threshold, wrong_pixels
from memories.configuration import require
from memories.likelihoods import Reconstruction
from memories.protocol import MemoryModel, binarize

STEPS_FILE = "denoising_steps.csv"
QUERIES_FILE = "denoising_queries.csv"
CURVES_FILE = "denoising_curves.png"


@dataclass(frozen=True, kw_only=True)
class DenoisingConfig(BenchmarkConfig):
    """Denoising settings; defaults follow GPM §3.2 / Appendix B."""

    split: str = "test"  # split the episodes come from
    episode_lengths: tuple[int, ...] = (4, 8, 16)  # T values written ([]: the model's episode_length)
    max_episodes: int = 32  # episodes per T (0: the whole split once)
    steps: int = 20  # iterative-reading steps
    threshold: float = 0.5  # binarization of each step's decoder mean (the GPM code used 0.1)
    success_fraction: float = 0.01  # success: at most ⌊fraction·pixels⌋ wrong pixels after the last step
    pixel_tolerance: float = 0.1  # 8-bit data only: a pixel is wrong when |error| exceeds this
    salt_pepper: tuple[float, ...] = (0.05, 0.10, 0.15, 0.20)  # fractions of pixels corrupted
    block: tuple[int, ...] = (6, 9, 12, 15)  # square side b (b×b block)
    rotation: tuple[float, ...] = (15.0, 30.0, 45.0)  # degrees
    gaussian: tuple[float, ...] = (0.5,)  # std of additive noise
    salt_pepper_mode: Literal["flip", "random_value"] = "flip"  # invert the chosen pixels, or set them to 0/1
    block_fill: float = 0.0  # value written into the block (0: occlusion)
    rotation_sign: Literal["random", "positive"] = "random"  # ± angle per query, or always counter-clockwise
    strip_rows: int = 4  # trajectories per noise type in the image strips (0: no strips)
    save_queries: bool = True  # write denoising_queries.csv

    def validate(self) -> None:
        require(self.split in ("test", "valid", "train"), "split", f"{self.split!r} is not one of test, valid, train")
        require(
            all(t > 0 for t in self.episode_lengths),
            "episode_lengths",
            f"must be positive, got {list(self.episode_lengths)}",
        )
        require(self.max_episodes >= 0, "max_episodes", f"must be >= 0, got {self.max_episodes}")
        require(self.batch_episodes > 0, "batch_episodes", f"must be positive, got {self.batch_episodes}")
        require(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        require(0.0 < self.threshold < 1.0, "threshold", f"must lie in (0, 1), got {self.threshold}")
        require(
            0.0 <= self.success_fraction < 1.0, "success_fraction", f"must lie in [0, 1), got {self.success_fraction}"
        )
        require(self.pixel_tolerance >= 0.0, "pixel_tolerance", f"must be >= 0, got {self.pixel_tolerance}")
        require(
            all(0.0 <= p <= 1.0 for p in self.salt_pepper),
            "salt_pepper",
            f"fractions must lie in [0, 1], got {list(self.salt_pepper)}",
        )
        require(all(b >= 1 for b in self.block), "block", f"block sizes must be >= 1, got {list(self.block)}")
        require(
            all(math.isfinite(r) for r in self.rotation),
            "rotation",
            f"angles must be finite, got {list(self.rotation)}",
        )
        require(all(s >= 0.0 for s in self.gaussian), "gaussian", f"stds must be >= 0, got {list(self.gaussian)}")
        require(
            bool(noise_cells(self)), "salt_pepper", "no corruption configured: give at least one level of one noise"
        )
        require(0.0 <= self.block_fill <= 1.0, "block_fill", f"must lie in [0, 1], got {self.block_fill}")
        require(self.strip_rows >= 0, "strip_rows", f"must be >= 0, got {self.strip_rows}")


def noise_cells(config: DenoisingConfig) -> list[tuple[str, float]]:
    """Every configured (noise, level), in :data:`CORRUPTIONS` order."""
    return [(kind, float(level)) for kind in CORRUPTIONS for level in getattr(config, kind)]


def strip_level(levels: tuple[float, ...]) -> float:
    """The level drawn in a noise type's image strip: the middle one (Table 2's 15 %, 12×12, 30°)."""
    return float(levels[len(levels) // 2])


def feed_back(model: MemoryModel, reconstruction: Reconstruction, threshold: float | None) -> Tensor:
    """A step's output image, exactly as ``iterative_read`` feeds it back: the decoder mean,
    binarized at ``threshold`` for binary data."""
    mean = reconstruction.mean
    return binarize(mean, threshold) if threshold is not None and model.binary_data else mean


def read_trajectory(
    model: MemoryModel, queries: Tensor, state: Any, steps: int, threshold: float | None
) -> list[Tensor]:
    """Output images of ``steps`` iterative reads of ``queries`` ``[B, Tq, C, H, W]`` (one per step)."""
    return [feed_back(model, r, threshold) for r in model.iterative_read(queries, state, steps, threshold)]


def corrupted_queries(
    clean: Tensor, kind: str, level: float, seed: int, config: DenoisingConfig, binary: bool
) -> Tensor:
    """Corrupted copies of ``clean`` ``[E, T, C, H, W]`` for one noise setting (seeded, CPU)."""
    generator = torch.Generator().manual_seed(seed)
    return corrupt(
        clean,
        kind,
        level,
        generator,
        binary=binary,
        salt_pepper_mode=config.salt_pepper_mode,
        block_fill=config.block_fill,
        rotation_sign=config.rotation_sign,
    )


@register_benchmark("denoising")
class DenoisingBenchmark(Benchmark):
    """Denoising by iterative reading: corrupted queries of written episodes, Hamming error and success rate per step."""

    config_class = DenoisingConfig
    config: DenoisingConfig

    @torch.no_grad()
    def run(self, context: BenchmarkContext) -> BenchmarkOutcome:
        model, config = context.model.eval(), self.config
        torch.manual_seed(context.seed)  # model-internal noise (e.g. GPM's write noise) is reproducible
        split = context.dataset.split(config.split)
        binary = model.binary_data
        pixels = math.prod(model.image_shape)
        cells = noise_cells(config)
        lengths = config.episode_lengths or (model.config.episode_length,)
        step_rows: list[dict[str, Any]] = []
        query_rows: list[dict[str, Any]] = []
        finals: dict[tuple[int, str, float], tuple[float, float]] = {}
        skipped: dict[str, str] = {}
        strip_t = max((t for t in lengths if t <= len(split)), default=None)
        strips: dict[str, Tensor] = {}
        strip_errors: dict[str, Tensor] = {}
        episode_counts: dict[int, int] = {}

        for length in lengths:
            if length > len(split):
                skipped[f"T{length}"] = (
                    f"skipped: episode length {length} exceeds the {config.split} split ({len(split)} images)"
                )
                continue
            episodes = fixed_episodes(split, length, config.episode_seed, config.max_episodes)
            episode_counts[length] = len(episodes)
            clean_all = split.images(episodes)  # [E, T, C, H, W]
            queries_all = {
                cell: corrupted_queries(
                    clean_all, *cell, corruption_seed(config.episode_seed, "denoising", length, *cell), config, binary
                )
                for cell in cells
            }
            errors: dict[tuple[str, float], list[Tensor]] = {cell: [] for cell in cells}
            changed: dict[tuple[str, float], list[Tensor]] = {cell: [] for cell in cells}
            for start in range(0, len(episodes), config.batch_episodes):
                clean = clean_all[start : start + config.batch_episodes].to(context.device)
                state = model.write(clean)
                for cell in cells:
                    queries = queries_all[cell][start : start + config.batch_episodes].to(context.device)
                    outputs = read_trajectory(model, queries, state, config.steps, config.threshold)
                    images = torch.stack([queries, *outputs])  # [steps+1, b, T, C, H, W]
                    errors[cell].append(wrong_pixels(images, clean, binary, config.pixel_tolerance).cpu())
                    changed[cell].append(wrong_pixels(images[1:], images[:-1], binary, config.pixel_tolerance).cpu())
                    if (
                        length == strip_t
                        and start == 0
                        and config.strip_rows
                        and cell[1] == strip_level(getattr(config, cell[0]))
                    ):
                        rows = min(config.strip_rows, images.shape[1])
                        strips[cell[0]] = torch.cat(
                            [clean[:rows, :1], images[:, :rows, 0].transpose(0, 1)], dim=1
                        ).cpu()
                        strip_errors[cell[0]] = errors[cell][-1][:, :rows, 0].T
            for kind, level in cells:
                err = torch.cat(errors[kind, level], dim=1).flatten(1)  # [steps+1, E·T]
                moved = torch.cat(changed[kind, level], dim=1).flatten(1)  # [steps, E·T]
                ok = success(err, pixels, config.success_fraction).double()
                for step in range(config.steps + 1):
                    mean, stderr = mean_and_stderr(err[step])
                    step_rows.append(
                        {
                            "T": length,
                            "noise": kind,
                            "level": format_level(level),
                            "step": step,
                            "hamming_mean": mean,
                            "hamming_stderr": stderr,
                            "success_rate": float(ok[step].mean()),
                            "changed_mean": float(moved[step - 1].double().mean()) if step else 0.0,
                            "queries": err.shape[1],
                        }
                    )
                finals[length, kind, level] = (float(err[-1].double().mean()), float(ok[-1].mean()))
                if config.save_queries:
                    item = torch.arange(err.shape[1])
                    query_rows.extend(
                        {
                            "T": length,
                            "noise": kind,
                            "level": format_level(level),
                            "episode": int(i // length),
                            "item": int(i % length),
                            "hamming_query": int(err[0, i]),
                            "hamming_final": int(err[-1, i]),
                            "success": bool(ok[-1, i]),
                        }
                        for i in item.tolist()
                    )

        outcome = BenchmarkOutcome()
        if not finals:
            raise ValueError(f"denoising: no episode length fits the {config.split} split ({len(split)} images)")
        self._add_metrics(outcome, finals, cells, sorted({t for t, _, _ in finals}))
        atomic_write_csv(context.run_dir / STEPS_FILE, step_rows)
        outcome.files.append(STEPS_FILE)
        if config.save_queries:
            atomic_write_csv(context.run_dir / QUERIES_FILE, query_rows)
            outcome.files.append(QUERIES_FILE)
        outcome.files += self._figures(context, strips, strip_errors, step_rows, strip_t)
        outcome.protocol = {
            "split": config.split,
            "episode_lengths": sorted(episode_counts),
            "episodes_per_length": {f"T{t}": n for t, n in sorted(episode_counts.items())},
            "episode_seed": config.episode_seed,
            "steps": config.steps,
            "threshold": config.threshold if binary else "none (8-bit data: the decoder mean is fed back)",
            "error": "Hamming distance to the clean item"
            if binary
            else f"pixels with |error| > {config.pixel_tolerance}",
            "success": f"at most {success_threshold(pixels, config.success_fraction)} of {pixels} pixels wrong after the last step",
            "corruptions": {
                "salt_pepper": f"exactly floor(p*H*W) pixels per image, mode {config.salt_pepper_mode}",
                "block": f"one b x b square inside the frame, filled with {config.block_fill:g}",
                "rotation": f"bilinear about the centre, sign {config.rotation_sign}, re-binarized at 0.5 for binary data",
                "gaussian": "additive N(0, s^2), clipped to [0, 1], re-binarized at 0.5 for binary data",
                "seeding": "one torch.Generator per (T, noise, level) seeded from episode_seed: identical queries for every model",
            },
            "levels": {kind: [format_level(level) for level in getattr(config, kind)] for kind in CORRUPTIONS},
            "averaging": "success_rate/hamming_final: every (T, noise, level) cell weighted equally",
            "memory": "written once per episode batch from the clean episode, never updated while reading",
            "skipped": skipped,
        }
        return outcome

    @staticmethod
    def _add_metrics(
        outcome: BenchmarkOutcome,
        finals: dict[tuple[int, str, float], tuple[float, float]],
        cells: list[tuple[str, float]],
        lengths: list[int],
    ) -> None:
        def add(suffix: str, keys: list[tuple[int, str, float]]) -> None:
            hamming = sum(finals[k][0] for k in keys) / len(keys)
            rate = sum(finals[k][1] for k in keys) / len(keys)
            outcome.add(f"success_rate{suffix}", rate, "fraction", higher_is_better=True)
            outcome.add(f"hamming_final{suffix}", hamming, "pixels", higher_is_better=False)

        add("", list(finals))
        for kind, level in cells:
            add(f"/{kind}/{format_level(level)}", [(t, kind, level) for t in lengths])
        for length in lengths:
            add(f"/T{length}", [(length, kind, level) for kind, level in cells])
            for kind, level in cells:
                add(f"/T{length}/{kind}/{format_level(level)}", [(length, kind, level)])

    def _figures(
        self,
        context: BenchmarkContext,
        strips: dict[str, Tensor],
        strip_errors: dict[str, Tensor],
        step_rows: list[dict[str, Any]],
        strip_t: int | None,
    ) -> list[str]:
        config, files = self.config, []
        for kind, images in strips.items():
            name = f"denoising_{kind}.png"
            level = format_level(strip_level(getattr(config, kind)))
            columns = ["clean", "query", *(str(s) for s in range(1, config.steps + 1))]
            texts = [["", *(str(int(e)) for e in row)] for row in strip_errors[kind]]
            image_grid(
                images,
                context.run_dir / name,
                title=f"{context.model.registry_name}: {kind} {level}, T={strip_t} (wrong pixels under each step)",
                column_labels=columns,
                cell_text=texts,
            )
            files.append(name)
        panels = []
        for kind in CORRUPTIONS:
            series = {}
            for level in getattr(config, kind):
                rows = [
                    r
                    for r in step_rows
                    if r["T"] == strip_t and r["noise"] == kind and r["level"] == format_level(level)
                ]
                series[format_level(level)] = ([r["step"] for r in rows], [r["hamming_mean"] for r in rows])
            if series:
                panels.append(
                    Panel(title=kind, xlabel="iterative-reading step", ylabel="mean wrong pixels", series=series)
                )
        if panels:
            line_figure(
                panels, context.run_dir / CURVES_FILE, title=f"{context.model.registry_name}: denoising, T={strip_t}"
            )
            files.append(CURVES_FILE)
        return files
