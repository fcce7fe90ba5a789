"""The benchmark protocol and registry.

A benchmark receives a (trained) model and a dataset through a :class:`BenchmarkContext` and
returns a :class:`BenchmarkOutcome`: flat metrics with units and direction, the protocol it
followed, and any raw per-step files it wrote into the run directory. A benchmark never knows
which model it runs; what it needs from a model is a declared capability, checked in
:meth:`Benchmark.not_applicable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from benchmarks.datasets import ImageDataset
from memories.configuration import require
from memories.protocol import MemoryModel
from memories.registry import Registry


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig:
    """Settings every benchmark accepts."""

    episode_seed: int = 1234  # seeds the evaluation episodes/corruptions: the same for every model
    batch_episodes: int = 32  # episodes evaluated per forward pass

    def validate(self) -> None:
        require(self.batch_episodes > 0, "batch_episodes", f"must be positive, got {self.batch_episodes}")


SPLIT_CHOICES = ("test", "valid", "train")


def require_split(value: str, key: str = "split", choices: tuple[str, ...] = SPLIT_CHOICES) -> None:
    """Config check: ``value`` names one of the dataset splits in ``choices``."""
    require(value in choices, key, f"{value!r} is not one of {', '.join(choices)}")


def require_lengths(lengths: tuple[int, ...], key: str = "episode_lengths") -> None:
    """Config check: every episode length is positive."""
    require(all(t > 0 for t in lengths), key, f"must be positive, got {list(lengths)}")


@dataclass
class BenchmarkContext:
    """What a benchmark gets to work with."""

    model: MemoryModel
    dataset: ImageDataset
    run_dir: Path
    seed: int
    device: torch.device
    progress: bool = False


@dataclass
class Metric:
    value: float
    unit: str = ""
    higher_is_better: bool = False


@dataclass
class BenchmarkOutcome:
    """Metrics (flat name -> :class:`Metric`), the protocol followed, and files written."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str = "", higher_is_better: bool = False) -> None:
        self.metrics[name] = Metric(float(value), unit, higher_is_better)


class Benchmark:
    """Base class; subclasses set ``config_class`` and implement :meth:`run`."""

    config_class: ClassVar[type[BenchmarkConfig]] = BenchmarkConfig
    registry_name: ClassVar[str] = ""
    needs_training: ClassVar[bool] = True  # train the model before running (runtime: no)

    def __init__(self, config: BenchmarkConfig):
        self.config = config

    def not_applicable(self, model_class: type[MemoryModel]) -> str | None:
        """Why this benchmark cannot run on ``model_class`` (None when it can)."""
        return None

    def run(self, context: BenchmarkContext) -> BenchmarkOutcome:
        raise NotImplementedError


BENCHMARKS: Registry[type[Benchmark]] = Registry(
    "benchmark",
    "memorybench.benchmarks",
    builtin_modules=(
        "benchmarks.elbo",
        "benchmarks.denoising",
        "benchmarks.generation",
        "benchmarks.capacity",
        "benchmarks.retrieval",
        "benchmarks.energy",
        "benchmarks.runtime",
    ),
)
register_benchmark = BENCHMARKS.register
