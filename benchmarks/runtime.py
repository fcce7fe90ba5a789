"""Runtime benchmark: time per training iteration and per memory write+read (GPM §3.5, Fig. 3b).

Two operations are timed on fresh (untrained) models of the run's class and config, rebuilt for
every memory size K and, for models that have one, every number of pseudo-inverse steps:
- ``train_step``: ``model.loss`` on a random episode batch ``[B, T, C, H, W]``, backward, gradient
  clipping (10) and an Adam step — one training iteration (Figure 3b);
- ``write_read``: ``latent_memory.write(codes)`` then ``latent_memory.read(codes, state)`` on random
  codes ``[B, T, C]`` — the memory alone, no encoder or decoder (not applicable to models without a
  latent memory). The write and read times are also reported separately.
Every point runs ``warmup`` untimed calls, then ``repeats`` timed calls; the median is the
headline (mean, min and interquartile range are kept). On CUDA every timed call is bracketed by
``torch.cuda.synchronize``. Peak memory per point (``peak_mb``, one extra untimed call): on CUDA
``torch.cuda.max_memory_allocated`` above the memory held before the call; on CPU the peak of
bytes allocated minus bytes freed by torch during the call, from ``torch.profiler``'s memory
events (exact for tensor storage; Python objects and allocator slack are not counted).

Metrics: ``train_step_ms`` and ``write_read_ms`` tagged ``{"T", "K"}`` per grid point (plus
``"steps"`` in the steps sweep); untagged, the run's own configuration, with ``<op>_peak_mb``.
Declared figures (Figure 3b, lines from ``runtime.csv``, a panel per op): ``time_by_size``
(``median_ms`` against K, a line per T; ``time_by_length`` against T for models without a memory
size) and ``time_by_steps`` (against ``steps`` at the ``steps_at`` (T, K) pairs; GPM: 64×64 and
128×64). Timing and peak memory come from :mod:`memorybench.benchmarks.common.timing`, the
training step from the trainer's ``training_step``. Columns: ``op, T, K, steps, device, median_ms`` then mean/min/IQR, repeats, batch,
threads, peak_mb, write_ms, read_ms and status (``skipped: ...``/``not applicable: ...`` rows have
no timings). K and steps are empty for models without a memory size or a steps knob. The
device, thread count and library versions are in ``result.json``'s protocol (and environment).
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from memorybench.benchmarks.base import (
    Benchmark,
    BenchmarkConfig,
    BenchmarkContext,
    BenchmarkOutcome,
    Figure,
    register_benchmark,
    require_lengths,
)
from memorybench.benchmarks.common.artifacts import atomic_write_csv
from memorybench.benchmarks.common.episodes import random_pixel_episodes
from memorybench.benchmarks.common.timing import PeakMemory, memory_call, peak_memory_mb, summarize, time_calls
from memorybench.benchmarks.common.trainer import adam, training_step
from memorybench.memories.configuration import require
from memorybench.memories.protocol import MemoryModel

CSV_FILE = "runtime.csv"
OPS = ("train_step", "write_read")
COLUMNS = [
    "op", "T", "K", "steps", "device", "median_ms", "mean_ms", "min_ms", "iqr_ms", "repeats",
    "batch", "threads", "peak_mb", "write_ms", "read_ms", "series", "status",
]  # fmt: skip


# ----------------------------------------------------------------------------- the benchmark
@dataclass(frozen=True, kw_only=True)
class RuntimeConfig(BenchmarkConfig):
    """Runtime grid; defaults are Figure 3b's (T, K grid; 1..15 BIC steps at T×K = 64×64, 128×64)."""

    episode_lengths: tuple[int, ...] = (32, 64, 128)  # T values of the grid
    memory_sizes: tuple[int, ...] = (16, 32, 48, 64)  # K values of the grid (models with a memory_size)
    steps: tuple[int, ...] = (1, 3, 5, 7, 9, 11, 13, 15)  # values of ``steps_field`` swept
    steps_at: tuple[tuple[int, int], ...] = ((64, 64), (128, 64))  # (T, K) pairs of the steps sweep
    steps_field: str = "pseudo_inverse_steps"  # the model config knob swept (models without it skip the sweep)
    ops: tuple[str, ...] = OPS  # operations timed
    warmup: int = 2  # untimed calls per point
    repeats: int = 10  # timed calls per point (the median is reported)
    measure_memory: bool = True  # one extra untimed call per point for peak_mb
    threads: int = 0  # torch CPU threads while timing (0: leave as is)
    time_budget_s: float = 1800.0  # whole benchmark; later points are recorded as skipped (0: no limit)
    learning_rate: float = 3e-4  # Adam settings of the timed training step
    weight_decay: float = 1e-4
    grad_clip: float = 10.0

    def validate(self) -> None:
        super().validate()
        require(bool(self.episode_lengths), "episode_lengths", "must list at least one T")
        require_lengths(self.episode_lengths)
        require(
            all(k > 0 for k in self.memory_sizes), "memory_sizes", f"must be positive, got {list(self.memory_sizes)}"
        )
        require(all(s >= 0 for s in self.steps), "steps", f"must be >= 0, got {list(self.steps)}")
        require(
            all(len(p) == 2 and min(p) > 0 for p in self.steps_at),
            "steps_at",
            f"expected positive [T, K] pairs, got {[list(p) for p in self.steps_at]}",
        )
        require(
            bool(self.ops) and all(op in OPS for op in self.ops),
            "ops",
            f"must be a non-empty subset of {', '.join(OPS)}, got {list(self.ops)}",
        )
        require(self.warmup >= 0, "warmup", f"must be >= 0, got {self.warmup}")
        require(self.repeats >= 1, "repeats", f"must be >= 1, got {self.repeats}")
        require(self.threads >= 0, "threads", f"must be >= 0, got {self.threads}")
        require(self.time_budget_s >= 0, "time_budget_s", f"must be >= 0, got {self.time_budget_s}")
        require(self.learning_rate > 0, "learning_rate", f"must be positive, got {self.learning_rate}")
        require(self.grad_clip > 0, "grad_clip", f"must be positive, got {self.grad_clip}")


@dataclass(frozen=True)
class Point:
    """One measurement: an op at episode length T, memory size K and steps (None: not a knob).

    ``series``: "grid" (the T × K grid), "own" (the run's own T and K when off the grid) or
    "steps" (the pseudo-inverse-steps sweep)."""

    op: str
    length: int
    size: int | None
    steps: int | None
    series: str = "grid"


@register_benchmark("runtime")
class RuntimeBenchmark(Benchmark):
    """Time per training iteration and per memory write+read against T, K and pseudo-inverse steps (Fig. 3b)."""

    config_class = RuntimeConfig
    config: RuntimeConfig
    needs_training = False

    def run(self, context: BenchmarkContext) -> BenchmarkOutcome:
        config = self.config
        threads_before = torch.get_num_threads()
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            rows, notes = self._measure(context)
        finally:
            torch.set_num_threads(threads_before)
        outcome = BenchmarkOutcome()
        base = context.model.config
        own = (base.episode_length, getattr(base, "memory_size", None), getattr(base, config.steps_field, None))
        for row in rows:
            if row["median_ms"] == "":
                continue
            tags = {"T": row["T"], **({"K": row["K"]} if row["K"] != "" else {})}
            if row["series"] == "steps":
                tags["steps"] = row["steps"]
            outcome.add(f"{row['op']}_ms", row["median_ms"], "ms", tags=tags)
            if row["series"] != "steps" and (row["T"], row["K"] if row["K"] != "" else None) == own[:2]:
                outcome.add(f"{row['op']}_ms", row["median_ms"], "ms")
                if row["peak_mb"] != "":
                    outcome.add(f"{row['op']}_peak_mb", row["peak_mb"], "MB")
        atomic_write_csv(context.run_dir / CSV_FILE, rows, columns=COLUMNS)
        outcome.files.append(CSV_FILE)
        outcome.figures += self._figures(own[1] is not None, own[2] is not None and bool(self.config.steps_at))
        outcome.protocol = {
            "ops": {
                "train_step": "model.loss + backward + grad-norm clip + Adam step on a random episode batch [B, T, C, H, W]",
                "write_read": "latent_memory.write(codes) + latent_memory.read(codes, state) on random codes [B, T, C]",
            },
            "batch_episodes": config.batch_episodes,
            "warmup": config.warmup,
            "repeats": config.repeats,
            "statistic": "median of the timed calls (mean, min, IQR in runtime.csv)",
            "synchronization": "torch.cuda.synchronize around every timed call"
            if context.device.type == "cuda"
            else "none (CPU)",
            "peak_memory": PeakMemory(context.device).method + " (one extra call)",
            "models": "fresh, untrained instances of the run's model class and config, rebuilt per K and steps",
            "own_configuration": {"T": own[0], "K": own[1], "steps": own[2]},
            "device": str(context.device),
            "device_name": torch.cuda.get_device_name(context.device)
            if context.device.type == "cuda"
            else platform.processor() or platform.machine(),
            "threads": config.threads or threads_before,
            "torch": torch.__version__,
            "python": platform.python_version(),
            **notes,
        }
        return outcome

    def _points(self, model: MemoryModel) -> list[Point]:
        config, base = self.config, model.config
        sizes = list(config.memory_sizes) if hasattr(base, "memory_size") else [None]
        default_steps = getattr(base, config.steps_field, None)
        points = [Point(op, t, k, default_steps) for k in sizes for t in config.episode_lengths for op in config.ops]
        own_size = getattr(base, "memory_size", None)
        if (base.episode_length, own_size) not in {(p.length, p.size) for p in points}:
            points += [Point(op, base.episode_length, own_size, default_steps, "own") for op in config.ops]
        if default_steps is not None:
            for t, k in config.steps_at:
                size = k if hasattr(base, "memory_size") else None
                points += [Point(op, t, size, s, "steps") for s in config.steps for op in config.ops]
        return points

    def _build(self, model: MemoryModel, likelihood: str, size: int | None, steps: int | None) -> MemoryModel:
        changes: dict[str, Any] = {}
        if size is not None:
            changes["memory_size"] = size
        if steps is not None:
            changes[self.config.steps_field] = steps
        config = dataclasses.replace(model.config, **changes)
        config.validate()
        return type(model)(config, image_shape=model.image_shape, likelihood=likelihood)  # type: ignore[arg-type]

    def _measure(self, context: BenchmarkContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        config, device = self.config, context.device
        generator = torch.Generator().manual_seed(config.episode_seed)
        torch.manual_seed(context.seed)
        started = time.perf_counter()
        models: dict[tuple[int | None, int | None], MemoryModel] = {}
        rows: list[dict[str, Any]] = []
        notes: dict[str, Any] = {}
        for point in self._points(context.model):
            row: dict[str, Any] = {
                "op": point.op,
                "T": point.length,
                "K": "" if point.size is None else point.size,
                "steps": "" if point.steps is None else point.steps,
                "device": str(device),
                "batch": config.batch_episodes,
                "threads": torch.get_num_threads(),
                "series": point.series,
                **{
                    column: ""
                    for column in (
                        "median_ms",
                        "mean_ms",
                        "min_ms",
                        "iqr_ms",
                        "repeats",
                        "peak_mb",
                        "write_ms",
                        "read_ms",
                    )
                },
            }
            if config.time_budget_s and time.perf_counter() - started > config.time_budget_s:
                row["status"] = f"skipped: time budget of {config.time_budget_s:g} s used up"
                rows.append(row)
                continue
            key = (point.size, point.steps)
            if key not in models:
                models[key] = self._build(context.model, context.dataset.likelihood, point.size, point.steps).to(device)
            model = models[key]
            if point.op == "write_read" and model.latent_memory is None:
                row["status"] = "not applicable: the model has no latent memory (latent_memory is None)"
                notes["write_read"] = row["status"]
                rows.append(row)
                continue
            call = self._call(point, model, device, generator)
            timings = time_calls(call, device, config.warmup, config.repeats)
            row.update({f"{k}_ms": round(v, 4) for k, v in summarize(timings["total"]).items()})
            row["repeats"] = config.repeats
            for part in ("write", "read"):
                if part in timings:
                    row[f"{part}_ms"] = round(statistics.median(timings[part]), 4)
            if config.measure_memory:
                peak = peak_memory_mb(call, device)
                row["peak_mb"] = "" if peak is None else round(peak, 3)
            row["status"] = "done"
            rows.append(row)
        return rows, notes

    def _call(
        self, point: Point, model: MemoryModel, device: torch.device, generator: torch.Generator
    ) -> Callable[[], Any]:
        config = self.config
        if point.op == "write_read":
            model.eval()
            memory = model.latent_memory
            assert memory is not None
            code_size = model.config.code_size
            codes = torch.randn(config.batch_episodes, point.length, code_size, generator=generator).to(device)
            return memory_call(memory, codes, device)
        model.train()
        optimizer = adam(model, config.learning_rate, config.weight_decay)
        shape, binary = model.image_shape, model.binary_data
        episode = random_pixel_episodes(config.batch_episodes, point.length, shape, binary, generator).to(device)
        return lambda: training_step(model, optimizer, episode, config.grad_clip)

    def _figures(self, has_k: bool, has_steps: bool) -> list[Figure]:
        """Figure 3b from ``runtime.csv``: median time against K (or T without a memory size) per op
        and T, and against the pseudo-inverse steps at the ``steps_at`` (T, K) pairs."""
        common = {"kind": "line", "file": CSV_FILE, "y": "median_ms", "facet": "op", "ylabel": "median ms per call"}
        figures = [
            Figure(
                name="time_by_size" if has_k else "time_by_length",
                title="Runtime per call against the memory size" if has_k else "Runtime per call against T",
                x="K" if has_k else "T",
                hue="T" if has_k else "",
                where={"series": "grid"},
                xlabel="memory size K" if has_k else "episode length T",
                lower_is_better=True,
                integer_x=True,
                logy=True,
                **common,
            )
        ]
        if has_steps:
            figures.append(
                Figure(
                    name="time_by_steps",
                    title="Runtime per call against the pseudo-inverse steps",
                    x="steps",
                    hue="T",
                    where={"series": "steps"},
                    xlabel=self.config.steps_field,
                    lower_is_better=True,
                    integer_x=True,
                    **common,
                )
            )
        return figures
