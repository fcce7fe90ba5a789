"""Capacity benchmark: a fixed memory holding ever longer episodes, up to a whole split.

GPM §3.4, Figure 4a: the memory size stays fixed while the episode length T
doubles from K (the memory size) up to the whole split — 24,345 images of Omniglot's training
split, 50,000 of binarized MNIST's. Per length, fixed episodes of the split (the same for every
model) are written and their items read back: ``reconstruction`` (tags ``{"T": T}``, with its
standard error over episodes) is −ln p(x | read(x, M)) through the model's deterministic read,
``nelbo_cond`` (same tags) the model's NELBO-cond of the same items (``neg_elbo``; a seeded subset of at most ``max_queries`` items per episode when T is
larger). The paper trains one model per T ("T-GPM"); here one trained model is evaluated at every
length (test-time capacity) — for the paper's protocol, list one memory per training length in
the suite. Run ``K`` sweeps (8×100, 32×100) as separate memories of the suite.

Bounded memory: the model's per-item encoder and decoder run on at most ``chunk_size`` items at
a time (the model's declared ``items_in_chunks`` hook; its methods are never replaced), reads are
issued in chunks, and several short episodes share one
write only while their items fit a chunk. Infeasible lengths are recorded, never crashed on:
before each length the time (and, when set, peak memory) is predicted from the growth measured
at the previous two lengths (exponent clamped to [1, 3] for time, [1, 2] for memory); a length
predicted over ``time_budget_s``/``memory_budget_mb`` — or running over the time budget between
two writes, or running out of memory — gets ``status: skipped`` with the reason in
``capacity.csv``, and so does every longer length.

"Huge episode" denoising (§3.4, Figure 4b): the whole ``huge_split`` (Omniglot's 8,070 test
images in the paper) is written as one episode, and ``huge_queries`` of its items are queried
with ``huge_noise_level`` salt-and-pepper noise and read iteratively for ``huge_steps`` steps:
``huge_hamming_final`` (the paper reports 97.08 pixels), ``huge_success_rate`` and the per-step
``capacity_huge_denoising.csv``, with an image strip.

Declared figures: ``reconstruction_by_length`` and ``nelbo_cond_by_length`` (lines from
``capacity.csv``, log-2 T axis), ``huge_hamming_per_step`` (line) and ``huge_denoising_strip``
(image). Peak memory is measured per length (:class:`~memorybench.benchmarks.common.timing.PeakMemory`).
"""

from __future__ import annotations

import math
import time
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
    require_lengths,
    require_split,
)
from memorybench.benchmarks.common.artifacts import atomic_write_csv
from memorybench.benchmarks.common.corruptions import corruption_seed, format_level, salt_and_pepper
from memorybench.benchmarks.common.datasets import ImageSplit
from memorybench.benchmarks.common.episodes import fixed_episodes
from memorybench.benchmarks.common.images import trajectory_strip
from memorybench.benchmarks.common.metrics import mean_and_stderr, nll_scale, success
from memorybench.benchmarks.common.reading import denoise
from memorybench.benchmarks.common.timing import PeakMemory, extrapolate, is_out_of_memory
from memorybench.memories.configuration import require
from memorybench.memories.protocol import MemoryModel

LENGTHS_FILE = "capacity.csv"
HUGE_FILE = "capacity_huge_denoising.csv"
HUGE_STRIP_FILE = "capacity_huge_denoising.png"
COLUMNS = [
    "T", "status", "reason", "episodes", "items_scored_per_episode", "reconstruction_mean", "reconstruction_stderr",
    "nelbo_cond_mean", "nelbo_cond_stderr", "seconds", "peak_memory_mb",
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class CapacityConfig(BenchmarkConfig):
    """Capacity settings; lengths default to K, 2K, 4K, ... and the whole split."""

    split: str = "train"  # split the long episodes come from (the paper: the training split)
    lengths: tuple[int, ...] = ()  # explicit episode lengths ([]: doubling from min_length)
    min_length: int = 0  # first length of the doubling (0: the model's memory_size, else its episode_length)
    max_length: int = 0  # last length (0: the whole split)
    max_episodes: int = 4  # episodes per length (fewer when the split holds fewer)
    max_queries: int = 1024  # items scored per episode, a seeded subset (0: every item)
    chunk_size: int = 1024  # items per encoder/decoder call and per read
    time_budget_s: float = 600.0  # per length (0: no limit)
    memory_budget_mb: float = 0.0  # predicted peak memory per length (0: no limit)
    huge_denoising: bool = True  # also write a whole split and denoise from it (§3.4)
    huge_split: str = "test"  # the split written as one episode
    huge_items: int = 0  # items of huge_split written (0: all of them)
    huge_queries: int = 1024  # items queried with noise (0: every written item)
    huge_noise_level: float = 0.05  # salt-and-pepper fraction of the queries
    huge_steps: int = 20  # iterative-reading steps
    threshold: float = 0.5  # binarization of each step's decoder mean (binary data)
    success_fraction: float = 0.01  # success: at most ⌊fraction·pixels⌋ wrong pixels

    def validate(self) -> None:
        super().validate()
        require_split(self.split)
        require_lengths(self.lengths, "lengths")
        require(self.min_length >= 0, "min_length", f"must be >= 0, got {self.min_length}")
        require(self.max_length >= 0, "max_length", f"must be >= 0, got {self.max_length}")
        require(
            not (self.min_length and self.max_length) or self.min_length <= self.max_length,
            "max_length",
            f"must be >= min_length ({self.min_length}), got {self.max_length}",
        )
        require(self.max_episodes > 0, "max_episodes", f"must be positive, got {self.max_episodes}")
        require(self.max_queries >= 0, "max_queries", f"must be >= 0, got {self.max_queries}")
        require(self.chunk_size > 0, "chunk_size", f"must be positive, got {self.chunk_size}")
        require(self.time_budget_s >= 0, "time_budget_s", f"must be >= 0, got {self.time_budget_s}")
        require(self.memory_budget_mb >= 0, "memory_budget_mb", f"must be >= 0, got {self.memory_budget_mb}")
        require_split(self.huge_split, "huge_split")
        require(self.huge_items >= 0, "huge_items", f"must be >= 0, got {self.huge_items}")
        require(self.huge_queries >= 0, "huge_queries", f"must be >= 0, got {self.huge_queries}")
        require(
            0.0 <= self.huge_noise_level <= 1.0, "huge_noise_level", f"must lie in [0, 1], got {self.huge_noise_level}"
        )
        require(self.huge_steps >= 1, "huge_steps", f"must be >= 1, got {self.huge_steps}")
        require(0.0 < self.threshold < 1.0, "threshold", f"must lie in (0, 1), got {self.threshold}")
        require(
            0.0 <= self.success_fraction < 1.0, "success_fraction", f"must lie in [0, 1), got {self.success_fraction}"
        )


class Skipped(Exception):
    """A length (or the huge-episode run) that does not fit the budgets; ``str()`` is the reason."""


def resolve_lengths(config: CapacityConfig, model: MemoryModel, split_size: int) -> list[int]:
    """The configured lengths, or min_length, 2·min_length, ... below the cap, then the cap."""
    if config.lengths:
        return list(config.lengths)
    start = config.min_length or getattr(model.config, "memory_size", 0) or model.config.episode_length
    cap = min(config.max_length or split_size, split_size)
    lengths, length = [], start
    while length < cap:
        lengths.append(length)
        length *= 2
    return [*lengths, cap]


@register_benchmark("capacity")
class CapacityBenchmark(Benchmark):
    """Reconstruction and NELBO-cond as the episode doubles up to a whole split, plus huge-episode denoising."""

    config_class = CapacityConfig
    config: CapacityConfig

    @torch.no_grad()
    def run(self, context: BenchmarkContext) -> BenchmarkOutcome:
        model, config = context.model.eval(), self.config
        torch.manual_seed(context.seed)
        split = context.dataset.split(config.split)
        factor, unit = nll_scale(model)
        rows: list[dict[str, Any]] = []
        times: list[tuple[int, float]] = []  # (T, seconds per episode)
        peaks: list[tuple[int, float]] = []  # (T, peak MB)
        stop: str | None = None
        with model.items_in_chunks(config.chunk_size):
            for length in resolve_lengths(config, model, len(split)):
                row: dict[str, Any] = {"T": length, "status": "done", "reason": ""}
                try:
                    if length > len(split):
                        raise Skipped(f"longer than the {config.split} split ({len(split)} images)")
                    if stop:
                        raise Skipped(stop)
                    episodes = fixed_episodes(split, length, config.episode_seed, config.max_episodes)
                    self._check_budget(times, peaks, length, len(episodes))
                    row.update(self._evaluate_length(context, split, episodes, factor))
                    times.append((length, row["seconds"] / len(episodes)))
                    if row["peak_memory_mb"] != "":
                        peaks.append((length, row["peak_memory_mb"]))
                except Skipped as skip:
                    row.update(status="skipped", reason=f"skipped: {skip}")
                    stop = stop or f"a shorter length was skipped ({skip})"
                except Exception as failure:
                    if not is_out_of_memory(failure):
                        raise
                    self._release(context.device)
                    message = f"out of memory at T={length}: {str(failure).splitlines()[0][:160]}"
                    row.update(status="skipped", reason=f"skipped: {message}")
                    stop = f"a shorter length ran out of memory (T={length})"
                rows.append(row)
            outcome = BenchmarkOutcome()
            huge = self._huge_denoising(context, outcome, times, stop) if config.huge_denoising else "off"

        done = [row for row in rows if row["status"] == "done"]
        for row in done:
            for name in ("reconstruction", "nelbo_cond"):
                outcome.add(name, row[f"{name}_mean"], unit, stderr=row[f"{name}_stderr"], tags={"T": row["T"]})
        if done:
            outcome.add("reconstruction_longest", done[-1]["reconstruction_mean"], unit)
            outcome.add("longest_length", done[-1]["T"], "items", higher_is_better=True)
        outcome.add("lengths_skipped", len(rows) - len(done), "lengths")
        atomic_write_csv(context.run_dir / LENGTHS_FILE, rows, columns=COLUMNS)
        outcome.files.append(LENGTHS_FILE)
        if done:
            outcome.figures += self._line_figures(unit)
        outcome.protocol = {
            "split": config.split,
            "lengths": [row["T"] for row in rows],
            "skipped": {f"T{row['T']}": row["reason"] for row in rows if row["status"] != "done"},
            "episode_seed": config.episode_seed,
            "max_episodes": config.max_episodes,
            "max_queries": config.max_queries,
            "memory_size": getattr(model.config, "memory_size", None),
            "trained_episode_length": model.config.episode_length,
            "reconstruction": "-ln p(x | read(x, M)) of written items, deterministic read, per image",
            "nelbo_cond": "model.neg_elbo of the same items (the whole episode, or neg_elbo(episode, queries=subset))",
            "chunk_size": config.chunk_size,
            "budgets": {"time_budget_s": config.time_budget_s, "memory_budget_mb": config.memory_budget_mb},
            "peak_memory": PeakMemory(context.device).method + " (one length)",
            "huge_denoising": huge,
        }
        return outcome

    def _check_budget(
        self, times: list[tuple[int, float]], peaks: list[tuple[int, float]], length: int, episodes: int
    ) -> None:
        config = self.config
        per_episode = extrapolate(times, length, 3.0)
        if config.time_budget_s and per_episode is not None and per_episode * episodes > config.time_budget_s:
            raise Skipped(
                f"predicted {per_episode * episodes:.0f} s for {episodes} episode(s) exceeds time_budget_s={config.time_budget_s:g}"
            )
        peak = extrapolate(peaks, length, 2.0)
        if config.memory_budget_mb and peak is not None and peak > config.memory_budget_mb:
            raise Skipped(f"predicted peak memory {peak:.0f} MB exceeds memory_budget_mb={config.memory_budget_mb:g}")

    def _evaluate_length(
        self, context: BenchmarkContext, split: ImageSplit, episodes: Tensor, factor: float
    ) -> dict[str, Any]:
        config = self.config
        count, length = episodes.shape
        generator = torch.Generator().manual_seed(corruption_seed(config.episode_seed, "capacity", length))
        scored = length if not config.max_queries or config.max_queries >= length else config.max_queries
        positions = torch.randperm(length, generator=generator)[:scored].sort().values
        recon: list[Tensor] = []
        nelbo: list[Tensor] = []
        with PeakMemory(context.device) as peak:
            started = time.perf_counter()
            self._score_episodes(context, split, episodes, positions, recon, nelbo, started)
            seconds = time.perf_counter() - started
        recon_mean, recon_stderr = mean_and_stderr(torch.cat(recon).mean(1) * factor)
        nelbo_mean, nelbo_stderr = mean_and_stderr(torch.cat(nelbo).mean(1) * factor)
        return {
            "episodes": count,
            "items_scored_per_episode": scored,
            "reconstruction_mean": recon_mean,
            "reconstruction_stderr": recon_stderr,
            "nelbo_cond_mean": nelbo_mean,
            "nelbo_cond_stderr": nelbo_stderr,
            "seconds": round(seconds, 4),
            "peak_memory_mb": "" if peak.mb is None else round(peak.mb, 2),
        }

    def _score_episodes(
        self,
        context: BenchmarkContext,
        split: ImageSplit,
        episodes: Tensor,
        positions: Tensor,
        recon: list[Tensor],
        nelbo: list[Tensor],
        started: float,
    ) -> None:
        """Write the episodes ``[E, T]`` a few at a time; append each written batch's per-item
        reconstruction NLL and NELBO-cond ``[b, scored]`` of the items at ``positions``."""
        config, model = self.config, context.model
        count, length = episodes.shape
        per_write = max(1, min(config.batch_episodes, config.chunk_size // length))
        scored = len(positions)
        for done, chunk in enumerate(episodes.split(per_write)):
            images = split.images(chunk).to(context.device)  # [b, T, C, H, W]
            queries = images if scored == length else images[:, positions.to(context.device)]
            state = model.write(images)
            per_read = max(1, config.chunk_size // images.shape[0])
            recon.append(
                torch.cat(
                    [-model.read(part, state).log_prob(part).cpu() for part in queries.split(per_read, dim=1)], dim=1
                )
            )
            result = model.neg_elbo(images) if scored == length else model.neg_elbo(images, queries)
            nelbo.append(result.cond.cpu())
            del state, result
            elapsed = time.perf_counter() - started
            if config.time_budget_s and elapsed > config.time_budget_s and done * per_write + len(chunk) < count:
                raise Skipped(
                    f"time budget exceeded: {elapsed:.0f} s after {done * per_write + len(chunk)} of {count} episodes "
                    f"(time_budget_s={config.time_budget_s:g})"
                )

    def _huge_denoising(
        self, context: BenchmarkContext, outcome: BenchmarkOutcome, times: list[tuple[int, float]], stop: str | None
    ) -> dict[str, Any]:
        """Write the whole ``huge_split`` as one episode and denoise from it; adds its metrics,
        files and figures to ``outcome`` and returns its protocol (status says when skipped)."""
        config, model = self.config, context.model
        split = context.dataset.split(config.huge_split)
        items = min(config.huge_items or len(split), len(split))
        noise = f"salt-and-pepper {config.huge_noise_level:g}"
        protocol: dict[str, Any] = {
            "split": config.huge_split,
            "items_written": items,
            "noise": f"salt_pepper {format_level(config.huge_noise_level)}",
            "steps": config.huge_steps,
            "threshold": config.threshold,
        }
        predicted = extrapolate(times, items, 3.0)
        if config.time_budget_s and predicted is not None and predicted > config.time_budget_s:
            return {
                **protocol,
                "status": f"skipped: predicted {predicted:.0f} s exceeds time_budget_s={config.time_budget_s:g}",
            }
        order = fixed_episodes(split, items, config.episode_seed, max_episodes=1)  # [1, N]: a seeded permutation
        try:
            written = split.images(order).to(context.device)
            state = model.write(written)
            clean = written[:, : min(config.huge_queries or items, items)]
            generator = torch.Generator().manual_seed(
                corruption_seed(config.episode_seed, "capacity_huge", config.huge_noise_level)
            )
            queries = salt_and_pepper(clean.cpu(), config.huge_noise_level, generator).to(context.device)
            errors: list[Tensor] = []
            for part_q, part_c in zip(queries.split(config.chunk_size, dim=1), clean.split(config.chunk_size, dim=1)):
                images, wrong = denoise(model, part_q, part_c, state, config.huge_steps, config.threshold)
                errors.append(wrong.cpu())
                if len(errors) == 1:  # the strip: the first six items
                    strip = torch.cat([part_c[0, :6, None], images[:, 0, :6].transpose(0, 1)], dim=1).cpu()
                    title = f"{model.registry_name}: {items} items written, {noise} queries (wrong pixels)"
                    trajectory_strip(strip, wrong[:, 0, :6].T, context.run_dir / HUGE_STRIP_FILE, title=title)
        except Exception as failure:
            if not is_out_of_memory(failure):
                raise
            self._release(context.device)
            reason = f"out of memory writing {items} items: {str(failure).splitlines()[0][:160]}"
            return {**protocol, "status": f"skipped: {reason}"}
        error = torch.cat(errors, dim=2).flatten(1)  # [steps+1, queries]
        ok = success(error, math.prod(model.image_shape), config.success_fraction).double()
        rows = [
            {"step": step, "hamming_mean": float(error[step].double().mean()), "success_rate": float(ok[step].mean()),
             "queries": error.shape[1]}
            for step in range(config.huge_steps + 1)
        ]  # fmt: skip
        atomic_write_csv(context.run_dir / HUGE_FILE, rows)
        for name, values, unit in (("huge_hamming_final", error[-1], "pixels"), ("huge_hamming_query", error[0], "pixels"),
                                   ("huge_success_rate", ok[-1], "fraction")):  # fmt: skip
            mean, stderr = mean_and_stderr(values)
            outcome.add(name, mean, unit, unit == "fraction", stderr=stderr)
        outcome.files += [HUGE_FILE, HUGE_STRIP_FILE]
        outcome.figures += [
            Figure(name="huge_hamming_per_step", kind="line", file=HUGE_FILE, x="step", y="hamming_mean",
                   title=f"Huge-episode denoising: {items} items written, {noise} queries",
                   xlabel="iterative-reading step", ylabel="mean wrong pixels", lower_is_better=True, integer_x=True),
            Figure(name="huge_denoising_strip", kind="image", file=HUGE_STRIP_FILE, title="Huge-episode denoising"),
        ]  # fmt: skip
        protocol.update(status="done", queries=int(error.shape[1]))
        if stop:
            protocol["note"] = f"ran although a capacity length was skipped ({stop})"
        return protocol

    @staticmethod
    def _release(device: torch.device) -> None:
        if device.type == "cuda":
            torch.cuda.empty_cache()

    @staticmethod
    def _line_figures(unit: str) -> list[Figure]:
        """Reconstruction and NELBO-cond against T (Figure 4a), from ``capacity.csv``."""
        return [
            Figure(
                name=f"{name}_by_length",
                kind="line",
                file=LENGTHS_FILE,
                title=f"Capacity: {label} as the episode outgrows the memory",
                x="T",
                y=f"{name}_mean",
                error=f"{name}_stderr",
                where={"status": "done"},
                xlabel="episode length T",
                ylabel=f"{label} [{unit}]",
                lower_is_better=True,
                integer_x=True,
                logx=True,
            )
            for name, label in (("reconstruction", "reconstruction"), ("nelbo_cond", "NELBO-cond"))
        ]
