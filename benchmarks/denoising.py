"""Denoising benchmark: retrieve written items from corrupted queries by iterative reading.

Protocol (GPM §3.2, Table 2, Figures 2, 7, 8; docs/protocol.md): for every episode
length T, fixed test episodes (a seeded permutation of the split cut into chunks of T, the same
for every model) are written clean; every item is then queried with a corrupted copy and the
model reads iteratively for ``steps`` steps, the memory never being updated while reading. Each
step's output — the decoder mean, binarized at ``threshold`` for binary data — is the next query
(the protocol's ``iterative_read``); with ``accept: energy`` (the default) a query moves to a new
output only when that lowers the model's energy, so a query that reached a stored item stays
there, and ``accept: always`` is the papers' loop. The public GPM code binarized at 0.1, which on
binarized MNIST thickens strokes at every step (its error grows step after step); 0.5, the
per-pixel mode, is the default (measurements in docs/models/gpm.md). Errors are counted against the clean item: Hamming distance
for binary data (pixels with |error| > ``pixel_tolerance`` for 8-bit data). A query succeeds when
at most ⌊``success_fraction``·pixels⌋ pixels are wrong after the last step (7 of 784 at 1 %).

The corruptions (:mod:`memorybench.benchmarks.common.corruptions`) are seeded per (T, noise, level) from
``episode_seed``, so every model of a suite answers exactly the same queries (paired results).
One memory is written per episode batch and all corrupted variants are read from it.

Metrics (``result.json``; tags as data, never in the name): ``success_rate`` and
``hamming_final`` without tags average every (T, noise, level) cell with equal weight; with tags
``{"noise", "level"}`` they average a noise setting over the T values, with ``{"T"}`` the cells of
one T, and with ``{"T", "noise", "level"}`` they are one cell, with its standard error over the
queries. Levels are numbers (``0.15``, ``12``, ``30``); the CSVs write them with ``%g``.

Files: ``denoising_steps.csv`` (per T, noise, level and step 0..steps — step 0 is the corrupted
query — mean and standard error of the wrong pixels, success rate, mean pixels changed by the
step), ``denoising_queries.csv`` (per query: corrupted and final errors, for paired tests) and
``denoising_<noise>.png`` image strips (clean, corrupted, every step, errors printed under each
image). Declared figures: ``hamming_per_step_T<T>`` and ``success_per_step_T<T>`` per episode
length (lines from ``denoising_steps.csv``: a panel per noise, a line per level and memory), and
``strip_<noise>`` (the image strips).

A model without a memory (its ``write`` returns no usable state) still runs: iterative reading
then is its own encoder/decoder fixed-point iteration, a memoryless baseline for the same queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from memorybench.benchmarks.base import (
    Benchmark,
    BenchmarkConfig,
    BenchmarkContext,
    BenchmarkOutcome,
    Figure,
    register_benchmark,
    require_lengths,
    require_split,
)
from memorybench.benchmarks.common.artifacts import atomic_write_csv
from memorybench.benchmarks.common.corruptions import CORRUPTIONS, corrupt, corruption_seed, format_level, tag_level
from memorybench.benchmarks.common.episodes import fixed_episodes
from memorybench.benchmarks.common.images import trajectory_strip
from memorybench.benchmarks.common.metrics import mean_and_stderr, success, success_threshold, wrong_pixels
from memorybench.benchmarks.common.reading import denoise
from memorybench.memories.configuration import require
from memorybench.memories.protocol import ACCEPT_RULES, MemoryModel

STEPS_FILE = "denoising_steps.csv"
# What a noise level is measured in (the corruptions' definitions in benchmarks/common/corruptions.py).
LEVEL_UNITS = {
    "salt_pepper": "fraction of pixels",
    "block": "pixels (side of the square)",
    "rotation": "degrees",
    "gaussian": "σ (pixel intensity)",
}
ACCEPT_MEANING = {
    "always": "always: every step's output is the next query (the papers' loop)",
    "energy": "energy: first read taken, then a query moves only to an output of lower model energy",
}
QUERIES_FILE = "denoising_queries.csv"


@dataclass(frozen=True, kw_only=True)
class DenoisingConfig(BenchmarkConfig):
    """Denoising settings; defaults follow GPM §3.2 / Appendix B."""

    split: str = "test"  # split the episodes come from
    episode_lengths: tuple[int, ...] = (4, 8, 16)  # T values written ([]: the model's episode_length)
    max_episodes: int = 32  # episodes per T (0: the whole split once)
    steps: int = 20  # iterative-reading steps
    threshold: float = 0.5  # binarization of each step's decoder mean (the GPM code used 0.1)
    accept: str = "energy"  # "energy": a step is taken only if it lowers the model's energy; "always": the papers' loop
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
        super().validate()
        require_split(self.split)
        require_lengths(self.episode_lengths)
        require(self.max_episodes >= 0, "max_episodes", f"must be >= 0, got {self.max_episodes}")
        require(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        require(0.0 < self.threshold < 1.0, "threshold", f"must lie in (0, 1), got {self.threshold}")
        require(self.accept in ACCEPT_RULES, "accept", f"{self.accept!r} is not one of {', '.join(ACCEPT_RULES)}")
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

    def check_image_shape(self, image_shape: tuple[int, ...]) -> str | None:
        """A block must fit inside the image (checked against every dataset before running)."""
        side = min(image_shape[1:])
        too_big = [b for b in self.block if b > side]
        return f"block {too_big[0]} is larger than the {side}-pixel image side" if too_big else None


def noise_cells(config: DenoisingConfig) -> list[tuple[str, float]]:
    """Every configured (noise, level), in :data:`CORRUPTIONS` order."""
    return [(kind, float(level)) for kind in CORRUPTIONS for level in getattr(config, kind)]


def strip_level(levels: tuple[float, ...]) -> float:
    """The level drawn in a noise type's image strip: the middle one (Table 2's 15 %, 12×12, 30°)."""
    return float(levels[len(levels) // 2])


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
        cells = noise_cells(config)
        lengths = config.episode_lengths or (model.config.episode_length,)
        fitting = [t for t in lengths if t <= len(split)]
        if not fitting:
            raise ValueError(f"denoising: no episode length fits the {config.split} split ({len(split)} images)")
        strip_t = max(fitting)
        step_rows: list[dict[str, Any]] = []
        query_rows: list[dict[str, Any]] = []
        finals: dict[tuple[int, str, float], tuple[Tensor, Tensor]] = {}
        strips: dict[str, tuple[Tensor, Tensor]] = {}
        episode_counts: dict[int, int] = {}
        for length in fitting:
            episodes = fixed_episodes(split, length, config.episode_seed, config.max_episodes)
            episode_counts[length] = len(episodes)
            errors, changed, drawn = self._read_episodes(
                context, split.images(episodes), length, cells, length == strip_t
            )
            strips.update(drawn)
            for cell in cells:
                rows = self._cell_rows(length, cell, errors[cell], changed[cell], math.prod(model.image_shape))
                steps, queries, finals[(length, *cell)] = rows
                step_rows += steps
                query_rows += queries

        outcome = BenchmarkOutcome()
        self._add_metrics(outcome, finals, cells, fitting)
        atomic_write_csv(context.run_dir / STEPS_FILE, step_rows)
        outcome.files.append(STEPS_FILE)
        if config.save_queries:
            atomic_write_csv(context.run_dir / QUERIES_FILE, query_rows)
            outcome.files.append(QUERIES_FILE)
        self._figures(context, outcome, strips, fitting, strip_t)
        skipped = {
            f"T{t}": f"skipped: episode length {t} exceeds the {config.split} split ({len(split)} images)"
            for t in lengths
            if t not in fitting
        }
        outcome.protocol = self._protocol(model, episode_counts, skipped)
        return outcome

    def _read_episodes(
        self, context: BenchmarkContext, clean_all: Tensor, length: int, cells: list[tuple[str, float]], draw: bool
    ) -> tuple[dict[tuple[str, float], Tensor], dict[tuple[str, float], Tensor], dict[str, tuple[Tensor, Tensor]]]:
        """Write the episodes ``[E, T, C, H, W]`` batch by batch and read every corrupted variant.

        Returns per cell the wrong pixels ``[steps+1, E·T]`` (step 0: the query), the pixels each
        step changed ``[steps, E·T]``, and (``draw``) the strip images and errors per noise type.
        """
        model, config = context.model, self.config
        binary = model.binary_data
        queries_all = {
            cell: corrupted_queries(
                clean_all, *cell, corruption_seed(config.episode_seed, "denoising", length, *cell), config, binary
            )
            for cell in cells
        }
        errors: dict[tuple[str, float], list[Tensor]] = {cell: [] for cell in cells}
        changed: dict[tuple[str, float], list[Tensor]] = {cell: [] for cell in cells}
        strips: dict[str, tuple[Tensor, Tensor]] = {}
        for start in range(0, len(clean_all), config.batch_episodes):
            clean = clean_all[start : start + config.batch_episodes].to(context.device)
            state = model.write(clean)
            for cell in cells:
                queries = queries_all[cell][start : start + config.batch_episodes].to(context.device)
                images, wrong = denoise(  # [steps+1, b, T, C, H, W], [steps+1, b, T]
                    model, queries, clean, state, config.steps, config.threshold, config.accept, config.pixel_tolerance
                )
                errors[cell].append(wrong.cpu())
                changed[cell].append(wrong_pixels(images[1:], images[:-1], binary, config.pixel_tolerance).cpu())
                if draw and start == 0 and config.strip_rows and cell[1] == strip_level(getattr(config, cell[0])):
                    rows = min(config.strip_rows, images.shape[1])  # item 0 of the first episodes
                    strip = torch.cat([clean[:rows, :1], images[:, :rows, 0].transpose(0, 1)], dim=1).cpu()
                    strips[cell[0]] = (strip, errors[cell][-1][:, :rows, 0].T)
        flat = {cell: torch.cat(errors[cell], dim=1).flatten(1) for cell in cells}
        moved = {cell: torch.cat(changed[cell], dim=1).flatten(1) for cell in cells}
        return flat, moved, strips

    def _cell_rows(
        self, length: int, cell: tuple[str, float], errors: Tensor, changed: Tensor, pixels: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], tuple[Tensor, Tensor]]:
        """Per-step rows, per-query rows and (final errors, final successes) ``[queries]`` of one cell."""
        config = self.config
        ok = success(errors, pixels, config.success_fraction).double()
        kind, level = cell[0], format_level(cell[1])
        steps = []
        for step in range(config.steps + 1):
            mean, stderr = mean_and_stderr(errors[step])
            steps.append(
                {
                    "T": length,
                    "noise": kind,
                    "level": level,
                    "step": step,
                    "hamming_mean": mean,
                    "hamming_stderr": stderr,
                    "success_rate": float(ok[step].mean()),
                    "changed_mean": float(changed[step - 1].double().mean()) if step else 0.0,
                    "queries": errors.shape[1],
                }
            )
        queries = []
        if config.save_queries:
            queries = [
                {
                    "T": length,
                    "noise": kind,
                    "level": level,
                    "episode": i // length,
                    "item": i % length,
                    "hamming_query": int(errors[0, i]),
                    "hamming_final": int(errors[-1, i]),
                    "success": bool(ok[-1, i]),
                }
                for i in range(errors.shape[1])
            ]
        return steps, queries, (errors[-1], ok[-1])

    def _protocol(self, model: MemoryModel, episode_counts: dict[int, int], skipped: dict[str, str]) -> dict[str, Any]:
        config, binary = self.config, model.binary_data
        pixels = math.prod(model.image_shape)
        return {
            "split": config.split,
            "episode_lengths": sorted(episode_counts),
            "episodes_per_length": {f"T{t}": n for t, n in sorted(episode_counts.items())},
            "episode_seed": config.episode_seed,
            "steps": config.steps,
            "threshold": config.threshold if binary else "none (8-bit data: the decoder mean is fed back)",
            "accept": ACCEPT_MEANING[config.accept],
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

    @staticmethod
    def _add_metrics(
        outcome: BenchmarkOutcome,
        finals: dict[tuple[int, str, float], tuple[Tensor, Tensor]],
        cells: list[tuple[str, float]],
        lengths: list[int],
    ) -> None:
        """Every (T, noise, level) cell with its standard error over queries, and the
        equal-weight averages over cells (no standard error: the cells share episodes)."""

        def add(tags: dict[str, Any], keys: list[tuple[int, str, float]]) -> None:
            one = len(keys) == 1
            for name, index, unit, higher in (
                ("success_rate", 1, "fraction", True),
                ("hamming_final", 0, "pixels", False),
            ):
                cells_mean = [mean_and_stderr(finals[k][index]) for k in keys]
                value = sum(mean for mean, _ in cells_mean) / len(keys)
                outcome.add(name, value, unit, higher, stderr=cells_mean[0][1] if one else None, tags=tags)

        add({}, list(finals))
        for kind, level in cells:
            add({"noise": kind, "level": tag_level(level)}, [(t, kind, level) for t in lengths])
        for length in lengths:
            add({"T": length}, [(length, kind, level) for kind, level in cells])
            for kind, level in cells:
                add({"T": length, "noise": kind, "level": tag_level(level)}, [(length, kind, level)])

    def _figures(
        self,
        context: BenchmarkContext,
        outcome: BenchmarkOutcome,
        strips: dict[str, tuple[Tensor, Tensor]],
        lengths: list[int],
        strip_t: int,
    ) -> None:
        """Save the image strips; declare them and the per-step line charts."""
        config = self.config
        for kind, (images, errors) in strips.items():
            name = f"denoising_{kind}.png"
            level = format_level(strip_level(getattr(config, kind)))
            title = f"{context.model.registry_name}: {kind} {level}, T={strip_t} (wrong pixels under each step)"
            trajectory_strip(images, errors, context.run_dir / name, title=title)
            outcome.files.append(name)
            outcome.figures.append(
                Figure(name=f"strip_{kind}", kind="image", file=name, title=f"Denoising: {kind} {level}")
            )
        for length in lengths:
            for y, label, lower in (
                ("hamming_mean", "mean wrong pixels", True),
                ("success_rate", "success rate", False),
            ):
                outcome.figures.append(
                    Figure(
                        name=f"{'hamming' if lower else 'success'}_per_step_T{length}",
                        kind="line",
                        file=STEPS_FILE,
                        title=f"Denoising by iterative reading, T={length}",
                        x="step",
                        y=y,
                        error="hamming_stderr" if lower else "",
                        trials="" if lower else "queries",
                        facet="noise",
                        hue="level",
                        facet_units=LEVEL_UNITS,
                        where={"T": length},
                        xlabel="iterative-reading step",
                        ylabel=label,
                        lower_is_better=lower,
                        integer_x=True,
                    )
                )
